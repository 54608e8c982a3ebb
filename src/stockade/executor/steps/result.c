/* Typed step failures: a step fills a stk_result and returns -1; only the caller decides
 * to report and exit (so a step can be tested, and used by any executor path). */
#include "steps.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int stk_fail(struct stk_result *r, const char *step, int err, const char *fmt, ...) {
    va_list ap;
    r->step = step;
    r->err = err;
    va_start(ap, fmt);
    vsnprintf(r->message, sizeof r->message, fmt, ap);
    va_end(ap);
    return -1;
}

/* runner/codes.py EXIT_CODES, the steps a process of the sandbox can fail in (the
 * parent-side ones, policy and preflight, never reach the executor's child). */
int stk_exit_code(const char *step) {
    static const struct { const char *step; int code; } codes[] = {
        {"cgroups", 111}, {"namespaces", 112}, {"idmap", 113}, {"rootfs", 114},
        {"lsm", 115}, {"rlimits", 116}, {"capabilities", 117}, {"no_new_privs", 118},
        {"landlock", 119}, {"hygiene", 120}, {"seccomp", 121}, {"internal", 122},
        {"exec-permission", 126}, {"exec", 127},
    };
    for (size_t i = 0; step != NULL && i < sizeof codes / sizeof codes[0]; i++)
        if (strcmp(codes[i].step, step) == 0)
            return codes[i].code;
    return 122;
}

int stk_report_line(int fd, const char *step, const char *message) {
    /* the runtime reports the first line: newlines in the message made spaces */
    char line[3002];
    int n = snprintf(line, 3001, "%s\t%s", step ? step : "internal", message);
    if (n < 0)
        return -1;
    if (n > 3000)
        n = 3000;
    for (int i = 0; i < n; i++)
        if (line[i] == '\n')
            line[i] = ' ';
    line[n++] = '\n';
    for (int off = 0; off < n;) {
        ssize_t w = write(fd, line + off, (size_t)(n - off));
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        off += (int)w;
    }
    return 0;
}

int stk_report(int fd, const struct stk_result *r) {
    return stk_report_line(fd, r->step, r->message);
}
