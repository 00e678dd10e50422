/*
 * out.h -- the inside of crew_out, shared by the library (crew_out_write and
 * friends, which plugins call) and the crew command (which hosts them).
 *
 * Bytes go into buf while they fit; when they do not, the host's overflow
 * hook takes them (a thread host grows buf, a process host spills to a
 * file), so the library never decides where a result lives.
 */
#ifndef CREW_OUT_H
#define CREW_OUT_H

#include <stddef.h>

#include "crew_plugin.h"

struct crew_out {
    char *buf;
    size_t len, cap;
    /* Take n bytes that do not fit in buf[len..cap): 0 or CREW_ENOMEM.
     * On success the bytes are part of the output (the hook may append
     * them to buf after growing it, or put them elsewhere). */
    int (*overflow)(crew_out *out, const void *p, size_t n);
    void *state;   /* the plugin's per-worker state */
    void *host;    /* the host's own */
};

#endif
