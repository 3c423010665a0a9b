/*
 * error.c - the engine's last-error message (thread local), and shape formatting.
 * Every failing entry point leaves a message here; the Lua layer raises it as an error.
 */
#include "internal.h"
#include <signal.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char g_msg[2048];

const char *nl_last_error(void) { return g_msg; }
void nl_clear_error(void) { g_msg[0] = 0; }
const char *nl_version(void) { return "0.1.0"; }

/* Async-signal-safe: only sets a flag. */
static volatile sig_atomic_t g_interrupted;
void nl_interrupt(void) { g_interrupted = 1; }
int nl_interrupted_take(void) {
    if (!g_interrupted) return 0;
    g_interrupted = 0;
    return 1;
}

size_t nl_abi_sizeof(const char *type_name) {
    if (strcmp(type_name, "nl_arg") == 0) return sizeof(nl_arg);
    if (strcmp(type_name, "nl_access") == 0) return sizeof(nl_access);
    if (strcmp(type_name, "nl_argtype") == 0) return sizeof(nl_argtype);
    return 0;
}

int nl_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_msg, sizeof g_msg, fmt, ap);
    va_end(ap);
    return -1;
}

int nl_error_prefix(const char *fmt, ...) {
    char old[sizeof g_msg];
    memcpy(old, g_msg, sizeof old);
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(g_msg, sizeof g_msg, fmt, ap);
    va_end(ap);
    if (n < 0) n = 0;
    size_t k = (size_t)n < sizeof g_msg - 3 ? (size_t)n : sizeof g_msg - 3;
    g_msg[k++] = ':';
    g_msg[k++] = ' ';
    size_t rest = sizeof g_msg - k - 1;
    size_t len = strlen(old);
    if (len > rest) len = rest;
    memcpy(g_msg + k, old, len);
    g_msg[k + len] = 0;
    return -1;
}

/* At most 160 bytes: an entry that would not leave room for ", ...}" and the NUL is
 * replaced by "..." (snprintf reports the untruncated length, so k may not just add up). */
const char *nl_shape_str(char *buf, int ndim, const int64_t *shape) {
    enum { CAP = 160, TAIL = 6 };   /* ", ...}" or "...}" plus the NUL */
    size_t k = 0;
    buf[k++] = '{';
    for (int i = 0; i < ndim; i++) {
        char item[32];
        int len = snprintf(item, sizeof item, i ? ", %lld" : "%lld", (long long)shape[i]);
        if (len < 0) len = 0;
        if (k + (size_t)len + TAIL > CAP) {
            memcpy(buf + k, i ? ", ..." : "...", i ? 5 : 3);
            k += i ? 5 : 3;
            break;
        }
        memcpy(buf + k, item, (size_t)len);
        k += (size_t)len;
    }
    buf[k++] = '}';
    buf[k] = 0;
    return buf;
}
