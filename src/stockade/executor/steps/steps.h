/* The executor's set-up steps that need no plan struct: the LSM exec label, Landlock,
 * the namespace-wide settings (hostname, sysctls, loopback), the tiny init, and the OCI
 * terminal.
 *
 * Each step takes plain arguments (the plan reader fills these) and never exits or
 * prints: a failure fills a stk_result (the step's name as in runner/codes.py, errno, a
 * message) and returns -1; the caller reports it (stk_report) and exits with
 * stk_exit_code(). So one set of tests proves each step without the executor around it
 * (tests/unit/test_executor_steps.py, tests/integration/runner/test_executor_steps_ns.py).
 */
#ifndef STOCKADE_EXECUTOR_STEPS_H
#define STOCKADE_EXECUTOR_STEPS_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* --- results (result.c) ------------------------------------------------------------ */

struct stk_result {
    const char *step; /* NULL: success; else a runner.codes.EXIT_CODES name */
    int err;          /* errno of the failing call, 0 when none (a check failed) */
    char message[512];
};

/* Fill r and return -1: `return stk_fail(r, "landlock", errno, "...", ...);` */
int stk_fail(struct stk_result *r, const char *step, int err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* runner.codes.EXIT_CODES: the runner's exit code for a failed step (unknown: 122). */
int stk_exit_code(const char *step);
/* The failed step's one line on the error pipe: "step<TAB>message\n" (newlines in the
 * message become spaces, at most 3000 bytes before the newline: the runtime reports the
 * first line). Returns 0 or -1 (errno). */
int stk_report(int fd, const struct stk_result *r);
/* The same line from a step's name and a message (at most 3000 bytes are sent). */
int stk_report_line(int fd, const char *step, const char *message);

/* --- a. LSM exec label (lsm.c) ---------------------------------------------------- */

/* Write "exec <apparmor_profile>" and/or <selinux_label> (NULL or "": not set) to
 * <proc>/thread-self/attr/..., the fd opened beneath <proc> without leaving it and both
 * checked to be on procfs (fail closed: a faked /proc never swallows the label).
 * proc: "/proc" in the executor (a parameter only so tests can offer a fake one).
 * Step "lsm". Before Landlock (which refuses the write), after the root is built. */
int stk_lsm_exec_label(const char *proc, const char *apparmor_profile,
                       const char *selinux_label, struct stk_result *r);

/* --- b. Landlock (landlock.c) ----------------------------------------------------- */

struct stk_landlock_path { const char *path; uint64_t access; };  /* LANDLOCK_ACCESS_FS_* */
struct stk_landlock_port { uint64_t port; uint64_t access; };     /* LANDLOCK_ACCESS_NET_* */

/* A runner.plan.LandlockPlan (+ the plan's landlock_extra rules), as the planner made
 * it: the ABI and the masks already fit the kernel (profiles/landlock.landlock_rules). */
struct stk_landlock {
    int enabled;  /* LandlockPlan.enabled: mode != "off" and abi > 0 */
    int abi;      /* decides the size of struct landlock_ruleset_attr (1-3, 4-5, 6+) */
    uint64_t handled_fs, handled_net, scoped;
    const struct stk_landlock_path *paths; size_t npaths;  /* plan.paths */
    const struct stk_landlock_path *extra; size_t nextra;  /* plan.landlock_extra */
    const struct stk_landlock_port *ports; size_t nports;
};

/* Enforce on the calling thread. scoped=0: `oci exec` (a joining process keeps IPC to
 * the sandbox it joins). A rule path missing in this root is skipped (counted in
 * *skipped if not NULL); every other error fails step "landlock". Needs no_new_privs
 * or CAP_SYS_ADMIN in the current user namespace. */
int stk_landlock_apply(const struct stk_landlock *ll, int scoped, size_t *skipped,
                       struct stk_result *r);

/* --- c. namespace-wide settings (netns.c) ----------------------------------------- */

struct stk_sysctl { const char *key, *value; }; /* "net.ipv4.ip_forward", "1" */

/* Step "namespaces", all three; by the init after the id maps, before the root is built. */
int stk_set_hostname(const char *name, struct stk_result *r);
int stk_write_sysctls(const struct stk_sysctl *kv, size_t n, struct stk_result *r);
int stk_loopback_up(struct stk_result *r);

/* --- d. the tiny init (init.c) ---------------------------------------------------- */

/* What the init passes on to the payload (the runtime's runner.launcher.FORWARDED). */
extern const int STK_FORWARDED[8];
/* Every signal the init blocks (1..NSIG-1 without SIGKILL, SIGSTOP, 32, 33). */
void stk_all_signals(sigset_t *set);
/* Block ALL_SIGNALS in the init before it forks the payload (the payload unblocks them
 * itself, stk_payload_signals). Step "internal" on failure. */
int stk_init_block_signals(struct stk_result *r);
/* The payload's side, just before its own last steps: every handler back to SIG_DFL,
 * nothing blocked. Step "hygiene". */
int stk_payload_signals(struct stk_result *r);
/* In the init, after the payload's fork: the init needs no privilege to reap and
 * forward. drop: the plan had no no_new_privs (else it holds no more than the payload
 * already). Best effort, errors ignored: the payload is forked already, and an init
 * that ended now would take it down with the pid namespace. */
void stk_init_shed_privileges(int drop);
/* Forward FORWARDED to `payload`, reap every child, and when the payload ends write
 * "e<status>" or "s<signal>" (no newline) on status_w. Returns the init's exit code
 * (the status, or 128+signal; 122 when status_w could not be written); the caller
 * _exit()s with it. Signals must already be blocked (stk_init_block_signals). */
int stk_init_reap(pid_t payload, int status_w);

/* --- fdpass.c ---------------------------------------------------------------------- */

/* sendmsg one `byte` with `fd` in SCM_RIGHTS on unix socket `sock` (EINTR retried).
 * 0, or -1 with errno. */
int stk_send_fd(int sock, char byte, int fd, int flags);

/* --- e. the OCI terminal (tty.c) -------------------------------------------------- */

struct stk_console_size { uint16_t rows, cols; }; /* OCI process.consoleSize */

/* In the payload, after setsid and once the root is built (its /dev/pts is the
 * container's devpts): open /dev/pts/ptmx, unlock, open the slave, send the master on
 * sock_fd (SCM_RIGHTS, one byte "m"; sock_fd is closed), set the size (NULL: none) and
 * return the slave in *slave. Step "hygiene". */
int stk_pty_inside(int sock_fd, const struct stk_console_size *size, int *slave,
                   struct stk_result *r);
/* The slave (a pty from stk_pty_inside, or a host one) becomes 0/1/2 and the controlling
 * terminal; slave is closed. Step "hygiene". */
int stk_tty_stdio(int slave, struct stk_result *r);
/* The whole session step: setsid (no controlling terminal to push input into: TIOCSTI,
 * CVE-2017-5226); then with tty_sock >= 0 the pty from inside (stk_pty_inside), else
 * tty_slave (a host pty the runner opened, or -1 for none) as stdio (stk_tty_stdio).
 * The payload's first step (or, without an init, the process's first after the root). */
int stk_session(int tty_slave, int tty_sock, const struct stk_console_size *size,
                struct stk_result *r);

#endif
