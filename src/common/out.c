/*
 * out.c -- crew_out_write and friends: what a plugin function calls to
 * write its result.  See common/out.h for who decides where bytes go.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/out.h"

int crew_out_write(crew_out *out, const void *buf, size_t len)
{
    if (!out || (!buf && len))
        return CREW_EINVAL;
    if (len <= out->cap - out->len) {
        if (len)
            memcpy(out->buf + out->len, buf, len);
        out->len += len;
        return 0;
    }
    return out->overflow ? out->overflow(out, buf, len) : CREW_ENOMEM;
}

int crew_out_vprintf(crew_out *out, const char *fmt, va_list ap)
{
    if (!out || !fmt)
        return CREW_EINVAL;
    /* Format straight into the free room; only text longer than it needs
     * a second pass. */
    va_list again;
    va_copy(again, ap);
    size_t room = out->cap - out->len;
    int n = vsnprintf(room ? out->buf + out->len : NULL, room, fmt, ap);
    if (n < 0) {
        va_end(again);
        return CREW_EINVAL;
    }
    if ((size_t)n < room) {
        out->len += (size_t)n;
        va_end(again);
        return 0;
    }
    char *tmp = malloc((size_t)n + 1);
    int rc = CREW_ENOMEM;
    if (tmp) {
        vsnprintf(tmp, (size_t)n + 1, fmt, again);
        rc = crew_out_write(out, tmp, (size_t)n);
        free(tmp);
    }
    va_end(again);
    return rc;
}

int crew_out_printf(crew_out *out, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = crew_out_vprintf(out, fmt, ap);
    va_end(ap);
    return rc;
}

int crew_out_error(crew_out *out, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = crew_out_vprintf(out, fmt, ap);
    va_end(ap);
    if (rc == 0)
        crew_out_write(out, "\n", 1);
    return 1;
}

void *crew_out_state(const crew_out *out)
{
    return out ? out->state : NULL;
}
