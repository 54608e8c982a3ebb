/* Test driver for stk_landlock_apply: applies the ruleset given on the command line to
 * itself (after no_new_privs, as the executor does), then tries what it is told to and
 * prints one line per try (tests/unit/test_executor_steps.py checks them).
 *   landlock_driver ABI HANDLED_FS SCOPED SCOPE_ON [rule|extra PATH ACCESS]... --
 *                   [read|write PATH | signal PID]...
 */
#define _GNU_SOURCE
#include "steps.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 5)
        return 2;
    struct stk_landlock_path rules[16], extra[16];
    struct stk_landlock ll = {0};
    ll.enabled = 1;
    ll.abi = atoi(argv[1]);
    ll.handled_fs = strtoull(argv[2], NULL, 0);
    ll.scoped = strtoull(argv[3], NULL, 0);
    int scope_on = atoi(argv[4]);
    int i = 5;
    for (; i + 2 < argc && strcmp(argv[i], "--") != 0; i += 3) {
        struct stk_landlock_path rule = {argv[i + 1], strtoull(argv[i + 2], NULL, 0)};
        if (strcmp(argv[i], "rule") == 0 && ll.npaths < 16)
            rules[ll.npaths++] = rule;
        else if (ll.nextra < 16)
            extra[ll.nextra++] = rule;
    }
    ll.paths = rules;
    ll.extra = extra;
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        return 3;
    struct stk_result r = {0};
    size_t skipped = 0;
    if (stk_landlock_apply(&ll, scope_on, &skipped, &r) != 0) {
        printf("failed %s %d\n", r.step, r.err);
        return stk_exit_code(r.step);
    }
    printf("skipped %zu\n", skipped);
    for (i++; i + 1 < argc; i += 2) {
        int rc;
        if (strcmp(argv[i], "signal") == 0)
            rc = kill((pid_t)atoi(argv[i + 1]), 0);
        else {
            rc = open(argv[i + 1], strcmp(argv[i], "write") == 0 ? O_WRONLY : O_RDONLY);
            if (rc >= 0)
                close(rc);
        }
        if (rc < 0)
            printf("%s %s errno %d\n", argv[i], argv[i + 1], errno);
        else
            printf("%s %s ok\n", argv[i], argv[i + 1]);
    }
    return 0;
}
