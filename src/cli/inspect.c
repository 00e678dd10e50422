/* inspect.c -- crew inspect (not written yet). */
#include "cli/cli.h"

int cli_inspect(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    cli_error("not implemented yet");
    return CLI_USAGE;
}
