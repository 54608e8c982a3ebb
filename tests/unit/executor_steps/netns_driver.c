/* Test driver for the namespace-wide settings, run inside fresh uts/ipc/net namespaces:
 *   netns_driver HOSTNAME|- LOOPBACK(0|1) [KEY VALUE]...
 * Failure: the step's report line ("step<TAB>message", stk_report) on stderr and the
 * step's exit code. */
#include "steps.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    if (argc < 3)
        return 2;
    struct stk_sysctl kv[16];
    size_t n = 0;
    for (int i = 3; i + 1 < argc && n < 16; i += 2)
        kv[n++] = (struct stk_sysctl){argv[i], argv[i + 1]};
    struct stk_result r = {0};
    if (stk_set_hostname(strcmp(argv[1], "-") ? argv[1] : "", &r) != 0 ||
        stk_write_sysctls(kv, n, &r) != 0 || (atoi(argv[2]) && stk_loopback_up(&r) != 0)) {
        stk_report(2, &r);
        return stk_exit_code(r.step);
    }
    return 0;
}
