/* d. The tiny init: PID 1 of the sandbox's pid namespace when the plan asks for an
 * init. It blocks every signal before forking the payload (a signal arriving in between
 * would otherwise kill the init, and with it the namespace), then only forwards, reaps
 * and reports: it needs nothing of the set-up, so it sheds its privileges first.
 *
 * The status bytes are the protocol the runner (launcher.py) reads: "e<n>" for an exit
 * status, "s<n>" for a killing signal, no newline; the init's own exit code is the
 * payload's (128+signal when killed), as a shell reports it.
 */
#define _GNU_SOURCE
#include "steps.h"

#include <errno.h>
#include <linux/capability.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define X_NSIG 65 /* one past the last signal: Linux numbers them 1..64 */

const int STK_FORWARDED[8] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH, SIGCONT};

void stk_all_signals(sigset_t *set) {
    sigemptyset(set);
    for (int s = 1; s < X_NSIG; s++)
        if (s != SIGKILL && s != SIGSTOP && s != 32 && s != 33) /* 32, 33: glibc's own */
            sigaddset(set, s);
}

int stk_init_block_signals(struct stk_result *r) {
    sigset_t all;
    stk_all_signals(&all);
    if (sigprocmask(SIG_BLOCK, &all, NULL) != 0)
        return stk_fail(r, "internal", errno, "block signals: %s", strerror(errno));
    return 0;
}

int stk_payload_signals(struct stk_result *r) {
    /* An ignored signal stays ignored across execve: every handler back to the default
     * (errors ignored: the signals signal() refuses are skipped, or reset below), then
     * unblock all. */
    for (int s = 1; s < X_NSIG; s++)
        if (s != SIGKILL && s != SIGSTOP && s != 32 && s != 33)
            signal(s, SIG_DFL);
    /* 32 and 33 are glibc's own (its signal() refuses them), and glibc's posix_spawn,
     * which starts the executor, leaves them ignored when the spawner had handlers for
     * them: the raw call puts them back to the default too (the kernel's sigaction). */
    struct { void *handler; unsigned long flags; void *restorer; uint64_t mask; } dfl = {0};
    dfl.handler = SIG_DFL;
    for (int s = 32; s <= 33; s++)
        syscall(SYS_rt_sigaction, s, &dfl, NULL, sizeof dfl.mask);
    sigset_t none;
    sigemptyset(&none);
    if (sigprocmask(SIG_SETMASK, &none, NULL) != 0)
        return stk_fail(r, "hygiene", errno, "unblock signals: %s", strerror(errno));
    return 0;
}

void stk_init_shed_privileges(int drop) {
    if (!drop)
        return;
    /* Permitted/effective/inheritable empty (ambient follows); the bounding set only
     * matters at an execve, which the init never does. Then no_new_privs, unless the
     * capset already failed: best effort, the first failure ends the shedding (the
     * payload is forked already, see stk_init_shed_privileges). */
    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];
    memset(data, 0, sizeof data);
    if (syscall(SYS_capset, &hdr, data) != 0)
        return;
    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
}

/* Reap every child that has ended; returns 1 and fills *result once the payload is
 * among them (the others are orphans the init inherited: reaped, not reported). */
static int reap_all(pid_t payload, char *result, size_t len) {
    int found = 0;
    for (;;) {
        int status;
        pid_t pid = waitpid(-1, &status, WNOHANG);
        if (pid < 0 && errno == EINTR)
            continue;
        if (pid <= 0) /* 0: none ended yet; ECHILD: no child left */
            return found;
        if (pid == payload) {
            if (WIFSIGNALED(status))
                snprintf(result, len, "s%d", WTERMSIG(status));
            else
                snprintf(result, len, "e%d", WEXITSTATUS(status));
            found = 1;
        }
    }
}

int stk_init_reap(pid_t payload, int status_w) {
    sigset_t wait_for;
    sigemptyset(&wait_for);
    for (size_t i = 0; i < sizeof STK_FORWARDED / sizeof STK_FORWARDED[0]; i++)
        sigaddset(&wait_for, STK_FORWARDED[i]);
    sigaddset(&wait_for, SIGCHLD);
    char result[16] = "";
    while (!result[0]) {
        siginfo_t info;
        int sig = sigwaitinfo(&wait_for, &info);
        if (sig < 0) /* EINTR: a stop/continue of the init itself; wait again */
            continue;
        if (sig != SIGCHLD) {
            kill(payload, sig); /* gone, or a uid the init may not signal: nothing to do */
            continue;
        }
        reap_all(payload, result, sizeof result);
    }
    size_t len = strlen(result);
    ssize_t n;
    do
        n = write(status_w, result, len);
    while (n < 0 && errno == EINTR);
    if (n != (ssize_t)len)
        return 122; /* the runtime never learns the status: the init ends as "internal" */
    int code = atoi(result + 1);
    return result[0] == 'e' ? code : 128 + code;
}
