/*
 * main.c -- `crew COMMAND ...`: which subcommand, --help and --version.
 */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#ifdef CREW_CLI_MPI
#include "cli/run.h"
/* crew-mpi: crew with the MPI side of `crew run --mpi` (run_mpi.c) */
extern const run_mpi_ops run_mpi_impl;
#endif
#include "crew.h"
#include "crew_plugin.h"

static const char usage[] =
    "usage: crew COMMAND [OPTIONS] ...\n"
    "\n"
    "Apply many functions to one big read-only data set, N at a time.\n"
    "\n"
    "commands:\n"
    "  run       run a plugin's functions over a snapshot, one task per line\n"
    "  pack      build a snapshot from binary, text or CSV files\n"
    "  inspect   describe a snapshot: header, checksum, data sets\n"
    "  demo      build a data set in memory and analyse it with every CPU\n"
    "\n"
    "`crew COMMAND --help` describes each; `man crew` has the whole story.\n"
    "  -h, --help      this text\n"
    "  -V, --version   crew's version and plugin ABI\n";

int main(int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*fn)(int, char **);
    } commands[] = {
        {"run", cli_run}, {"pack", cli_pack}, {"inspect", cli_inspect}, {"demo", cli_demo},
    };
#ifdef CREW_CLI_MPI
    run_mpi = &run_mpi_impl;
#endif
    if (argc < 2) {
        fputs(usage, stderr);
        return CLI_USAGE;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
        fputs(usage, stdout);
        return CLI_OK;
    }
    if (!strcmp(cmd, "-V") || !strcmp(cmd, "--version")) {
        printf("crew %s (plugin ABI %u)\n", crew_version(), CREW_PLUGIN_ABI);
        return CLI_OK;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(cmd, commands[i].name)) {
            cli_cmd = commands[i].name;
            return commands[i].fn(argc - 1, argv + 1);
        }
    fprintf(stderr, "crew: unknown command '%s' (try: crew --help)\n", cmd);
    return CLI_USAGE;
}
