/*
 * bench_plug.c -- the plugin bench_cli runs with `crew run`: the two kinds
 * of task of cli_work.h as plugin functions.
 *
 *   hash ARG   the short task: ARG and its hash (what task_prog prints)
 *   heavy I    heavy task I over the snapshot (what lib_run prints)
 */
#include "cli_work.h"
#include "crew_plugin.h"

static int hash_fn(const crew_arena *data, const char *arg, crew_out *out)
{
    (void)data;
    return crew_out_printf(out, CLI_SHORT_LINE, arg, cli_short_hash(arg));
}

static int heavy_fn(const crew_arena *data, const char *arg, crew_out *out)
{
    uint64_t i, sum;
    if (!cli_parse_index(arg, &i))
        return crew_out_error(out, "heavy: '%s' is not a task number", arg);
    if (cli_heavy_task(data, i, &sum) != 0)
        return crew_out_error(out, "heavy: the snapshot is not one bench_cli made");
    return crew_out_printf(out, CLI_HEAVY_LINE, i, sum);
}

static const crew_function functions[] = {
    {"hash", hash_fn, "ARG: ARG and its hash, mixed 2000 times (a few microseconds)"},
    {"heavy", heavy_fn, "I: heavy task I, a fold over the whole snapshot array"},
};

CREW_PLUGIN("bench_plug", "bench_cli's tasks: short and heavy", functions, NULL, NULL);
