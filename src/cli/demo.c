/* demo.c -- crew demo (not written yet). */
#include "cli/cli.h"

int cli_demo(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    cli_error("not implemented yet");
    return CLI_USAGE;
}
