/* The test OFX host's C-variadic suite functions. Stable Rust cannot define variadic
 * functions, so these read the variadic arguments and call plain Rust functions
 * (tests/src/ofx_host.rs) with them. */
#include <stdarg.h>
#include <stdio.h>
#include <stddef.h>

typedef int OfxStatus;

/* 0 = int (also choice, boolean), 1 = double, 2 = string, -1 = unknown handle. */
extern int fsh_param_kind(void *param);
extern OfxStatus fsh_param_get(void *param, int *i, double *d, const char **s);
extern OfxStatus fsh_param_set(void *param, int i, double d, const char *s);
extern OfxStatus fsh_host_message(void *handle, const char *type, const char *id,
                                  const char *text, int persistent);

static OfxStatus get_va(void *param, va_list ap) {
    switch (fsh_param_kind(param)) {
    case 0: return fsh_param_get(param, va_arg(ap, int *), NULL, NULL);
    case 1: return fsh_param_get(param, NULL, va_arg(ap, double *), NULL);
    case 2: return fsh_param_get(param, NULL, NULL, va_arg(ap, const char **));
    default: return 9; /* kOfxStatErrBadHandle */
    }
}

static OfxStatus set_va(void *param, va_list ap) {
    switch (fsh_param_kind(param)) {
    case 0: return fsh_param_set(param, va_arg(ap, int), 0.0, NULL);
    case 1: return fsh_param_set(param, 0, va_arg(ap, double), NULL);
    case 2: return fsh_param_set(param, 0, 0.0, va_arg(ap, const char *));
    default: return 9;
    }
}

OfxStatus fsh_paramGetValue(void *param, ...) {
    va_list ap;
    va_start(ap, param);
    OfxStatus s = get_va(param, ap);
    va_end(ap);
    return s;
}

/* The test host's params do not animate: the value at any time is the value. */
OfxStatus fsh_paramGetValueAtTime(void *param, double time, ...) {
    va_list ap;
    (void)time;
    va_start(ap, time);
    OfxStatus s = get_va(param, ap);
    va_end(ap);
    return s;
}

OfxStatus fsh_paramSetValue(void *param, ...) {
    va_list ap;
    va_start(ap, param);
    OfxStatus s = set_va(param, ap);
    va_end(ap);
    return s;
}

OfxStatus fsh_paramSetValueAtTime(void *param, double time, ...) {
    va_list ap;
    (void)time;
    va_start(ap, time);
    OfxStatus s = set_va(param, ap);
    va_end(ap);
    return s;
}

static OfxStatus message_va(void *handle, const char *type, const char *id, const char *format,
                            va_list ap, int persistent) {
    char text[4096];
    vsnprintf(text, sizeof text, format ? format : "", ap);
    return fsh_host_message(handle, type, id, text, persistent);
}

OfxStatus fsh_message(void *handle, const char *type, const char *id, const char *format, ...) {
    va_list ap;
    va_start(ap, format);
    OfxStatus s = message_va(handle, type, id, format, ap, 0);
    va_end(ap);
    return s;
}

OfxStatus fsh_setPersistentMessage(void *handle, const char *type, const char *id,
                                   const char *format, ...) {
    va_list ap;
    va_start(ap, format);
    OfxStatus s = message_va(handle, type, id, format, ap, 1);
    va_end(ap);
    return s;
}
