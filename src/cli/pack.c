/* pack.c -- crew pack (not written yet). */
#include "cli/cli.h"

int cli_pack(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    cli_error("not implemented yet");
    return CLI_USAGE;
}
