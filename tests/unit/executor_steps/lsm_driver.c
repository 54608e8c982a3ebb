/* Test driver for stk_lsm_exec_label: lsm_driver PROC APPARMOR|- SELINUX|-
 * Prints "ok" or "failed<TAB>step<TAB>errno<TAB>message". */
#include "steps.h"

#include <stdio.h>
#include <string.h>

int main(int argc, char **argv) {
    if (argc != 4)
        return 2;
    const char *aa = strcmp(argv[2], "-") ? argv[2] : NULL;
    const char *se = strcmp(argv[3], "-") ? argv[3] : NULL;
    struct stk_result r = {0};
    if (stk_lsm_exec_label(argv[1], aa, se, &r) != 0) {
        printf("failed\t%s\t%d\t%s\n", r.step, r.err, r.message);
        return stk_exit_code(r.step);
    }
    printf("ok\n");
    return 0;
}
