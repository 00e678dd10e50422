/*
 * plugin.c -- dlopen a plugin, check its ABI and its table, and look its
 * functions up by name.
 *
 * Everything the table says is checked once here, so that running a task
 * never meets a NULL function or a duplicate name: a plugin built wrong is
 * refused with a message before any task runs.
 */
#include <dlfcn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/plugin.h"

#define MAX_NAME 64

/* Sorting pairs of (name, index) keeps qsort's comparison free of globals. */
typedef struct named {
    const char *name;
    size_t index;
} named;

static int by_name(const void *a, const void *b)
{
    return strcmp(((const named *)a)->name, ((const named *)b)->name);
}

static int valid_name(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++) {
        char c = s[n];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-'))
            return 0;
    }
    return n > 0 && n <= MAX_NAME;
}

int cli_plugin_load(cli_plugin *p, const char *path)
{
    memset(p, 0, sizeof *p);
    p->path = path;
    /* dlopen searches the library path for a bare name; a plugin named on
     * the command line is a file, as the user would expect from any tool. */
    char buf[4096];
    if (!strchr(path, '/')) {
        snprintf(buf, sizeof buf, "./%s", path);
        path = buf;
    }
    p->handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!p->handle) {
        cli_error("cannot load plugin %s: %s", p->path, dlerror());
        return -1;
    }
    const crew_plugin *t = dlsym(p->handle, "crew_plugin_table");
    if (!t) {
        cli_error("%s is not a crew plugin: it exports no crew_plugin_table "
                  "(define one with CREW_PLUGIN(...) from crew_plugin.h)", p->path);
        goto fail;
    }
    if (t->abi != CREW_PLUGIN_ABI) {
        cli_error("plugin %s was built for crew plugin ABI %u; this crew speaks ABI %u: "
                  "rebuild it against this crew's crew_plugin.h", p->path, t->abi,
                  CREW_PLUGIN_ABI);
        goto fail;
    }
    if (t->size < sizeof *t) {
        cli_error("plugin %s has a crew_plugin_table of %u bytes, expected %zu: rebuild it",
                  p->path, t->size, sizeof *t);
        goto fail;
    }
    if (!t->functions || t->n_functions == 0 || t->n_functions > 1u << 20) {
        cli_error("plugin %s lists no functions", p->path);
        goto fail;
    }
    for (size_t i = 0; i < t->n_functions; i++) {
        const crew_function *f = &t->functions[i];
        if (!f->name || !valid_name(f->name) || !f->fn) {
            cli_error("plugin %s: function %zu has %s", p->path, i + 1,
                      !f->name ? "no name"
                      : !f->fn ? "no code (fn is NULL)"
                               : "a bad name (letters, digits, _ . - only, at most 64)");
            goto fail;
        }
    }
    named *sorted = malloc(t->n_functions * sizeof *sorted);
    p->by_name = malloc(t->n_functions * sizeof *p->by_name);
    if (!sorted || !p->by_name) {
        free(sorted);
        cli_error("out of memory");
        goto fail;
    }
    for (size_t i = 0; i < t->n_functions; i++)
        sorted[i] = (named){t->functions[i].name, i};
    qsort(sorted, t->n_functions, sizeof *sorted, by_name);
    for (size_t i = 0; i < t->n_functions; i++) {
        p->by_name[i] = sorted[i].index;
        if (i && !strcmp(sorted[i].name, sorted[i - 1].name)) {
            cli_error("plugin %s defines function '%s' twice", p->path, sorted[i].name);
            free(sorted);
            goto fail;
        }
    }
    free(sorted);
    p->table = t;
    return 0;
fail:
    free(p->by_name);
    p->by_name = NULL;
    dlclose(p->handle);
    p->handle = NULL;
    return -1;
}

long cli_plugin_find(const cli_plugin *p, const char *name, size_t len)
{
    size_t lo = 0, hi = p->table->n_functions;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        const char *s = p->table->functions[p->by_name[mid]].name;
        int c = strncmp(s, name, len);
        if (c == 0 && s[len] != '\0')
            c = 1;
        if (c == 0)
            return (long)p->by_name[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

void cli_plugin_list(const cli_plugin *p)
{
    const crew_plugin *t = p->table;
    bool described = t->description && *t->description;
    printf("%s%s%.*s\n", t->name ? t->name : "(unnamed plugin)", described ? ": " : "",
           described ? (int)strcspn(t->description, "\n") : 0, described ? t->description : "");
    /* one line per function: a help text is cut at its first newline */
    for (size_t i = 0; i < t->n_functions; i++) {
        const char *help = t->functions[i].help ? t->functions[i].help : "";
        printf("  %-20s %.*s\n", t->functions[i].name, (int)strcspn(help, "\n"), help);
    }
}

void cli_plugin_unload(cli_plugin *p)
{
    free(p->by_name);
    /* Not dlclose'd: its code may still be referenced by atexit handlers or
     * thread-local destructors it registered. */
    p->by_name = NULL;
}
