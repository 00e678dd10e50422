/*
 * plugin.h -- loading a plugin and finding its functions by name.
 */
#ifndef CREW_CLI_PLUGIN_H
#define CREW_CLI_PLUGIN_H

#include <stddef.h>

#include "crew_plugin.h"

typedef struct cli_plugin {
    void *handle;
    const crew_plugin *table;
    const char *path;
    size_t *by_name;   /* function indexes sorted by name */
} cli_plugin;

/* Load P.so and check its table: 0, or -1 after printing why. */
int cli_plugin_load(cli_plugin *p, const char *path);

/* The index of the function called name[0, len), or -1. */
long cli_plugin_find(const cli_plugin *p, const char *name, size_t len);

/* Print "name  help" for every function, in table order. */
void cli_plugin_list(const cli_plugin *p);

void cli_plugin_unload(cli_plugin *p);

#endif
