/* Test driver for the tiny init: this process is the init (a child subreaper, as PID 1
 * of a pid namespace would be), its child the payload. MODE:
 *   exit3   the payload exits with 3
 *   wait    the payload says "r" on stdout and waits for a signal (the test sends
 *           SIGTERM to the init, which must forward it)
 *   orphan  the payload leaves an ended child of its own behind and exits with 3: the
 *           init inherits it and must reap it too
 * The init reports on STATUS_FD, says "no-children" on stderr when nothing is left to
 * reap, and exits with the code stk_init_reap returned.
 *   init_driver MODE STATUS_FD
 */
#define _GNU_SOURCE
#include "steps.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

static void payload(const char *mode) {
    struct stk_result r = {0};
    if (stk_payload_signals(&r) != 0)
        _exit(100);
    if (strcmp(mode, "wait") == 0) {
        if (write(1, "r", 1) != 1)
            _exit(101);
        for (;;)
            pause();
    }
    if (strcmp(mode, "orphan") == 0) {
        pid_t gc = fork();
        if (gc == 0)
            _exit(0);
        siginfo_t info; /* wait until it is a zombie, without reaping it */
        waitid(P_PID, (id_t)gc, &info, WEXITED | WNOWAIT);
    }
    _exit(3);
}

int main(int argc, char **argv) {
    if (argc != 3)
        return 2;
    int status_w = atoi(argv[2]);
    prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    struct stk_result r = {0};
    if (stk_init_block_signals(&r) != 0)
        return stk_exit_code(r.step);
    pid_t child = fork();
    if (child < 0)
        return 122;
    if (child == 0)
        payload(argv[1]);
    close(1);
    stk_init_shed_privileges(1);
    int code = stk_init_reap(child, status_w);
    if (waitpid(-1, NULL, WNOHANG) < 0)
        fputs("no-children\n", stderr);
    return code;
}
