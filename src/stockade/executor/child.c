/* The container's process, from its clone to execve (docs/EXECUTOR.md, steps 5 to 10;
 * the messages are the ones users and the tests know). Three modes (plan.exec_mode):
 * create (OCI create: the gate), run (stockade run / the API: EXECUTING, no gate) and
 * exec (oci exec: already in the container's namespaces, only the payload's steps).
 * With plan.init the process is a tiny init (PID 1) that takes the identity steps,
 * forks the payload and reaps. A failed step writes ONE line "step<TAB>message\n" on the
 * error pipe (child_fail) and exits with the step's code (runner/codes.py). */
#define _GNU_SOURCE
#include "executor.h"

#include <sys/socket.h>
#include <sys/wait.h>

#define PIDS_WITH_INIT 2 /* the processes a sandbox with an init holds before its payload forks */
#define SECCOMP_FLAG_NEW_LISTENER (1UL << 3)

static int g_err_w = -1;

void child_report_to(int err_w) {
    g_err_w = err_w;
}

/* A failed call inside a step: "[Errno N] text", the message format users and the tests
 * know. */
#define OS_STEP(step, expr) \
    do { if ((expr) < 0) child_fail(step, "[Errno %d] %s", errno, strerror(errno)); } while (0)

void child_fds_none(struct child_fds *f) {
    memset(f, 0, sizeof *f);
    f->err_w = f->sync_r = f->status_w = f->created_w = f->gate = -1;
    f->tty_slave = f->tty_sock = f->listener = -1;
}

void child_fail(const char *step, const char *fmt, ...) {
    char message[3001];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    if (g_err_w >= 0) {
        /* the reader may be gone (a create's runtime exits at "created"): EPIPE, not a
         * death by SIGPIPE, so the exit code still names the step */
        sigset_t pipe_sig;
        sigemptyset(&pipe_sig);
        sigaddset(&pipe_sig, SIGPIPE);
        sigprocmask(SIG_BLOCK, &pipe_sig, NULL);
        stk_report_line(g_err_w, step, message);
    }
    _exit(stk_exit_code(step));
}

/* A failed set-up step (executor/steps): its message to the runtime, its exit code. */
void step_failed(const struct stk_result *r) {
    child_fail(r->step ? r->step : "internal", "%s", r->message);
}

#ifdef STOCKADE_TEST_HOOKS
int test_fault_asked(const char *step) {
    const char *want = getenv("STOCKADE_TEST_FAULT");
    return want != NULL && strcmp(want, step) == 0;
}
#endif

/* A change of uid/gid clears PR_SET_PDEATHSIG: set it again, then make sure the runtime
 * did not die in between (its end of our status pipe is closed). */
static void keep_deathsig(const char *step, int status_w) {
    OS_STEP(step, prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0));
    struct pollfd pfd = {status_w, POLLOUT, 0};
    if (status_w >= 0 && poll(&pfd, 1, 0) > 0 && (pfd.revents & POLLERR))
        _exit(EXIT_INTERNAL); /* the runtime is gone: never run unsupervised */
}

/* The bounding set first (dropping from it needs CAP_SETPCAP, which the id change
 * takes away), KEEPCAPS so that the permitted set survives the id change, then the sets,
 * then ambient (only a permitted and inheritable capability can be raised). */
static void apply_caps(const struct plan *p) {
    for (uint64_t cap = 0; cap <= p->last_cap_plan; cap++)
        if (!(p->bounding >> cap & 1))
            OS_STEP("capabilities", prctl(PR_CAPBSET_DROP, cap, 0, 0, 0));
    OS_STEP("capabilities", prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0));
    if (p->setgroups)
        OS_STEP("capabilities", setgroups((size_t)p->ngroups, p->groups));
    OS_STEP("capabilities", setresgid((gid_t)p->gid, (gid_t)p->gid, (gid_t)p->gid));
    OS_STEP("capabilities", setresuid((uid_t)p->uid, (uid_t)p->uid, (uid_t)p->uid));
    OS_STEP("capabilities", prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0));
    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2] = {
        {(uint32_t)p->effective, (uint32_t)p->permitted, (uint32_t)p->inheritable},
        {(uint32_t)(p->effective >> 32), (uint32_t)(p->permitted >> 32), (uint32_t)(p->inheritable >> 32)},
    };
    OS_STEP("capabilities", (int)syscall(SYS_capset, &hdr, data));
    OS_STEP("capabilities", prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0));
    for (int i = 0; i < p->nambient; i++)
        OS_STEP("capabilities", prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, p->ambient[i], 0, 0));
}

/* The capabilities step. deathsig: this process is the runtime's child (the init, or a
 * payload without one) and must die with it; a payload behind a gate outlives its
 * creator. */
static void caps_step(const struct plan *p, const struct child_fds *f, int deathsig) {
    STEP_STARTS("capabilities");
    apply_caps(p);
    if (deathsig && f->gate < 0) /* a uid change cleared it: set it again */
        keep_deathsig("capabilities", f->status_w);
}

static rlim_t rl(uint64_t v) { return v == UINT64_MAX ? RLIM_INFINITY : (rlim_t)v; }

/* runner.plan.RLIMIT_NAMES, for the messages */
static const char *rlimit_name(uint64_t res) {
    static const char *const names[] = {"cpu", "fsize", "data", "stack", "core", "rss",
                                        "nproc", "nofile", "memlock", "as", "locks",
                                        "sigpending", "msgqueue", "nice", "rtprio", "rttime"};
    return res < sizeof names / sizeof names[0] ? names[res] : "?";
}

/* Raise the hard limits above the current ones while CAP_SYS_RESOURCE may still be
 * held (the capabilities step drops it); the payload sets the exact values later. */
static void raise_hard(const struct plan *p) {
    STEP_STARTS("rlimits");
    for (int i = 0; i < p->nrlimits; i++) {
        struct rlimit cur;
        OS_STEP("rlimits", getrlimit((int)p->rlimits[i][0], &cur));
        rlim_t h = rl(p->rlimits[i][2]);
        if (cur.rlim_max == RLIM_INFINITY || (h != RLIM_INFINITY && h <= cur.rlim_max))
            continue;
        cur.rlim_max = h;
        if (setrlimit((int)p->rlimits[i][0], &cur) != 0)
            child_fail("rlimits", "%s hard limit %llu: [Errno %d] %s", rlimit_name(p->rlimits[i][0]),
                       (unsigned long long)p->rlimits[i][2], errno, strerror(errno));
    }
}

/* The exact values, set by the task that execs (an init is not held to the payload's
 * limits). */
static void own_rlimits(const struct plan *p) {
    STEP_STARTS("rlimits");
    for (int i = 0; i < p->nrlimits; i++) {
        struct rlimit r = {rl(p->rlimits[i][1]), rl(p->rlimits[i][2])};
        if (setrlimit((int)p->rlimits[i][0], &r) != 0)
            child_fail("rlimits", "%s=%llu/%llu: [Errno %d] %s", rlimit_name(p->rlimits[i][0]),
                       (unsigned long long)p->rlimits[i][1], (unsigned long long)p->rlimits[i][2],
                       errno, strerror(errno));
    }
}

/* execvp's search, before seccomp, so a miss is reported (127; found but not
 * executable: 126). */
static const char *find_cmd(const struct plan *p, char *out, size_t outlen) {
    STEP_STARTS("exec");
    const char *cmd = p->argv[0];
    if (strchr(cmd, '/') != NULL) {
        struct stat st;
        if (stat(cmd, &st) == 0 && S_ISREG(st.st_mode) && access(cmd, X_OK) == 0)
            return cmd;
        if (stat(cmd, &st) == 0)
            child_fail("exec-permission", "%s: permission denied (%s)", cmd, cmd);
        child_fail("exec", "%s: command not found", cmd);
    }
    const char *denied = NULL;
    const char *s = p->path_var;
    char deniedbuf[PATH_MAX];
    for (;;) {
        const char *colon = strchr(s, ':');
        size_t n = colon ? (size_t)(colon - s) : strlen(s);
        if (snprintf(out, outlen, "%.*s/%s", (int)(n ? n : 1), n ? s : ".", cmd) < (int)outlen) {
            struct stat st;
            if (stat(out, &st) == 0) {
                if (S_ISREG(st.st_mode) && access(out, X_OK) == 0)
                    return out;
                snprintf(deniedbuf, sizeof deniedbuf, "%s", out);
                denied = deniedbuf;
            }
        }
        if (colon == NULL)
            break;
        s = colon + 1;
    }
    if (denied != NULL)
        child_fail("exec-permission", "%s: permission denied (%s)", cmd, denied);
    child_fail("exec", "%s: command not found", cmd);
}

/* The identity steps: LSM label, hard rlimits, (capabilities, no_new_privs), Landlock,
 * fds, cwd, umask, the command's lookup. With an init they run in the init and the
 * payload inherits them. joins: oci exec (no Landlock scoping, see stk_landlock_apply).
 * Returns the command's path (in `found`). */
static const char *identity_steps(const struct plan *p, const struct child_fds *f, int joins,
                                  char *found, size_t foundlen) {
    struct stk_result r = {0};
    /* First: Landlock would refuse the write to /proc/thread-self/attr/exec. The label is
     * a task attribute, inherited by the payload's fork, used at its execve. */
    STEP_STARTS("lsm");
    if ((p->apparmor_profile != NULL || p->selinux_label != NULL) &&
        stk_lsm_exec_label("/proc", p->apparmor_profile, p->selinux_label, &r) != 0)
        step_failed(&r);
    raise_hard(p);
    if (p->nnp) {
        caps_step(p, f, 1);
        STEP_STARTS("no_new_privs");
        OS_STEP("no_new_privs", prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0));
        if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1)
            child_fail("no_new_privs", "the kernel did not keep no_new_privs");
    }
    /* Without no_new_privs, Landlock needs CAP_SYS_ADMIN (in this user namespace): apply
     * it while we still have it; the payload drops its capabilities after seccomp. */
    STEP_STARTS("landlock");
    if (stk_landlock_apply(&p->landlock, !joins, NULL, &r) != 0)
        step_failed(&r);
    STEP_STARTS("hygiene");
    /* Every fd above 2 closes at execve (the error pipe must live until then). */
    OS_STEP("hygiene", (int)syscall(SYS_close_range, 3, ~0U, X_CLOSE_RANGE_CLOEXEC));
    /* CVE-2024-21626: the cwd must be a directory inside the new root, resolved in it. */
    int rootfd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
    OS_STEP("hygiene", rootfd);
    const char *cwd = p->cwd;
    while (*cwd == '/')
        cwd++;
    int cwdfd = x_openat2(rootfd, *cwd ? cwd : ".", O_PATH | O_DIRECTORY | O_CLOEXEC,
                          X_RESOLVE_IN_ROOT | X_RESOLVE_NO_MAGICLINKS);
    if (cwdfd < 0)
        child_fail("hygiene", "working directory %s (resolved inside the root): %s", p->cwd,
                   strerror(errno));
    close(rootfd);
    OS_STEP("hygiene", fchdir(cwdfd));
    close(cwdfd);
    if (p->has_umask)
        umask((mode_t)p->umask);
    char cwdbuf[PATH_MAX];
    if (getcwd(cwdbuf, sizeof cwdbuf) == NULL) /* the cwd is not reachable from the root */
        child_fail("hygiene", "[Errno %d] %s", errno, strerror(errno));
    const char *path = find_cmd(p, found, foundlen);
    /* the filters came compiled in the plan: the step only starts here (a test's fault
     * fails before the payload's fork) */
    STEP_STARTS("seccomp");
    return path;
}

/* Own session (no terminal of the runtime's to push input into: TIOCSTI), the terminal
 * as stdio. */
static void session(const struct plan *p, const struct child_fds *f) {
    STEP_STARTS("hygiene");
    struct stk_result r = {0};
    if (stk_session(f->tty_slave, f->tty_sock, p->has_console ? &p->console : NULL, &r) != 0)
        step_failed(&r);
}

/* The set-up is over: a death from here on is the payload's. */
static void executing(const struct child_fds *f) {
    STEP_STARTS("internal");
    if (write(f->err_w, &(char){MSG_EXECUTING}, 1) != 1)
        child_fail("internal", "[Errno %d] %s", errno, strerror(errno));
}

static int read_exact(int fd, void *buf, size_t n) {
    size_t have = 0;
    while (have < n) {
        ssize_t got = read(fd, (char *)buf + have, n - have);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            break;
        have += (size_t)got;
    }
    return (int)(have == n);
}

/* The gate: "created" to the runtime, then wait for `start` (runc's exec fifo): "s",
 * an 8-byte length and the state JSON (for startContainer hooks). A gate closed without
 * the start byte: deleted before start, the payload never runs. Returns the state. */
static char *gate(const struct child_fds *f, size_t *state_len) {
    STEP_STARTS("hygiene");
    /* the creating process exits after "created": the container is reparented */
    OS_STEP("hygiene", prctl(PR_SET_PDEATHSIG, 0, 0, 0, 0));
    if (write(f->created_w, &(char){MSG_CREATED}, 1) != 1)
        child_fail("hygiene", "[Errno %d] %s", errno, strerror(errno));
    close(f->created_w);
    OS_STEP("hygiene", fcntl(f->gate, F_SETFL, 0)); /* opened O_NONBLOCK by the runtime */
    unsigned char got[1 + MSG_START_LENGTH_BYTES] = {0};
    int whole = read_exact(f->gate, got, sizeof got);
    char *state = NULL;
    *state_len = 0;
    if (got[0] == MSG_START && whole) {
        uint64_t len = 0;
        for (int i = MSG_START_LENGTH_BYTES; i >= 1; i--) /* little-endian */
            len = len << 8 | got[i];
        state = malloc(len + 1);
        if (state == NULL)
            child_fail("hygiene", "state of %llu bytes: out of memory", (unsigned long long)len);
        size_t have = 0;
        while (have < len) { /* what arrives before EOF (a short state goes on as is) */
            ssize_t n = read(f->gate, state + have, len - have);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                break;
            have += (size_t)n;
        }
        *state_len = have;
    }
    close(f->gate);
    if (got[0] != MSG_START)
        _exit(EXIT_INTERNAL);
    return state;
}

/* The hook's exit code (-signal when killed), -1000 when timed out. */
#define HOOK_TIMED_OUT (-1000)
static int wait_hook(pid_t pid, int64_t timeout) {
    int64_t ticks = timeout < 0 ? -1 : timeout * 100;
    for (;;) {
        int status;
        pid_t done = waitpid(pid, &status, ticks < 0 ? 0 : WNOHANG);
        if (done < 0 && errno == EINTR)
            continue;
        if (done == pid)
            return WIFSIGNALED(status) ? -WTERMSIG(status) : WEXITSTATUS(status);
        if (done < 0)
            return -1;
        if (ticks == 0) {
            kill(pid, SIGKILL);
            while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                ;
            return HOOK_TIMED_OUT;
        }
        ticks--;
        poll(NULL, 0, 10);
    }
}

/* A hook's environment, as oci/hooks.py builds the other hooks' (a KEY=VALUE map): an
 * entry without "=" is dropped, a repeated key keeps its last value. */
static void hook_env(const struct start_hook *h, char **out) {
    int n = 0;
    for (int i = 0; h->env[i] != NULL; i++) {
        const char *eq = strchr(h->env[i], '=');
        if (eq == NULL)
            continue;
        size_t klen = (size_t)(eq - h->env[i]) + 1;
        int later = 0;
        for (int j = i + 1; h->env[j] != NULL && !later; j++)
            later = strncmp(h->env[j], h->env[i], klen) == 0;
        if (!later)
            out[n++] = h->env[i];
    }
    out[n] = NULL;
}

/* startContainer hooks, inside the container, before the program, the state on stdin.
 * A failing hook stops the container: the program never runs. */
static void start_hooks(const struct plan *p, const char *state, size_t state_len) {
    for (int i = 0; i < p->nstart_hooks; i++) {
        const struct start_hook *h = &p->start_hooks[i];
        int pipefd[2];
        if (pipe2(pipefd, O_CLOEXEC) != 0) /* the hook holds only its stdin: EOF after the state */
            _exit(EXIT_INTERNAL);
        pid_t pid = fork();
        if (pid < 0)
            _exit(EXIT_INTERNAL);
        if (pid == 0) {
            char *env[MAX_ARGS + 1];
            char *fallback[2] = {(char *)h->path, NULL};
            hook_env(h, env);
            dup2(pipefd[0], 0);
            execve(h->path, h->argv[0] != NULL ? (char **)h->argv : fallback, env);
            _exit(127);
        }
        close(pipefd[0]);
        sigset_t pipe_sig; /* a hook that does not read its stdin: EPIPE, not our death */
        sigemptyset(&pipe_sig);
        sigaddset(&pipe_sig, SIGPIPE);
        sigprocmask(SIG_BLOCK, &pipe_sig, NULL);
        for (size_t off = 0; off < state_len;) {
            ssize_t w = write(pipefd[1], state + off, state_len - off);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0)
                break;
            off += (size_t)w;
        }
        sigprocmask(SIG_UNBLOCK, &pipe_sig, NULL);
        close(pipefd[1]);
        int status = wait_hook(pid, h->timeout);
        if (status != 0) {
            char why[64];
            if (status == HOOK_TIMED_OUT)
                snprintf(why, sizeof why, "timed out");
            else
                snprintf(why, sizeof why, "exit status %d", status);
            dprintf(2, "stockade: hooks.startContainer[%d] %s: %s\n", i, h->path, why);
            _exit(EXIT_INTERNAL);
        }
    }
}

/* Seccomp last, just before execve, so the filters need not allow any of the set-up.
 * All run; the kernel takes the strictest verdict. `stockade learn`: the
 * last filter is the recorder's, loaded with a listener whose fd goes to the runtime
 * (the ones before it load first: the recorder would see their load as the payload's). */
static void seccomp_last(const struct plan *p, const struct child_fds *f) {
    STEP_STARTS("seccomp");
    int n = 0;
    while (n < 3 && p->bpf_len[n] > 0)
        n++;
    for (int i = 0; i < n; i++) {
        struct sock_fprog prog = {(unsigned short)(p->bpf_len[i] / 8),
                                  (struct sock_filter *)p->bpf[i]};
        int listen = p->seccomp_listener && i == n - 1;
        if (listen && f->listener < 0)
            child_fail("seccomp", "the recorder's listener has no socket to go to");
        unsigned long flags = listen ? SECCOMP_FLAG_NEW_LISTENER : (unsigned long)p->seccomp_flags;
        long rc = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &prog);
        if (rc < 0)
            child_fail("seccomp", "[Errno %d] %s", errno, strerror(errno));
        if (listen && stk_send_fd(f->listener, 'L', (int)rc, LISTENER_SEND_FLAGS) != 0)
            child_fail("seccomp", "[Errno %d] %s", errno, strerror(errno));
    }
}

/* The payload's own last steps: (session), rlimits, signals, the gate (create, exec)
 * or EXECUTING (run), seccomp, (capabilities), execve. */
static void __attribute__((noreturn)) payload_exec(const struct plan *p, struct child_fds *f,
                                                   const char *path, int own_session) {
    struct stk_result r = {0};
    if (own_session) {
        session(p, f);
        if (p->init)
            close(f->status_w);
    }
    own_rlimits(p);
    STEP_STARTS("hygiene");
    /* every handler back to the default (an ignored signal stays ignored across execve),
     * nothing blocked (the init blocked everything before the fork) */
    if (stk_payload_signals(&r) != 0)
        step_failed(&r);
    if (f->gate >= 0) {
        size_t state_len;
        char *state = gate(f, &state_len);
        if (p->nstart_hooks > 0)
            start_hooks(p, state, state_len);
        free(state);
    } else {
        executing(f); /* OCI: the gate's "created" says it instead */
    }
    /* Without no_new_privs, loading the filter needs CAP_SYS_ADMIN, so it comes before
     * the capabilities (the filter must then allow capset, prctl and setresuid). */
    seccomp_last(p, f);
    if (!p->nnp) /* under an init, the payload dies with the init (its pid namespace) */
        caps_step(p, f, !p->init);
    execve(path, p->argv, p->env);
    child_fail(errno == ENOENT ? "exec" : "exec-permission", "%s: %s", p->argv[0], strerror(errno));
}

/* No init (OCI, no pid namespace, oci exec): the one process takes every step. */
static void __attribute__((noreturn)) payload_alone(const struct plan *p, struct child_fds *f,
                                                    int joins) {
    static char found[PATH_MAX];
    session(p, f);
    const char *path = identity_steps(p, f, joins, found, sizeof found);
    payload_exec(p, f, path, 0);
}

/* The init cannot start the payload with EAGAIN: name the pids limit that left no room
 * for it (the init is a process of the sandbox too). */
static void check_room(const struct plan *p, int err) {
    if (err == EAGAIN && p->has_pids_limit && p->pids_limit < PIDS_WITH_INIT)
        child_fail("cgroups", "resources.pids: the pids limit (%lld) does not leave room for "
                   "the payload: the sandbox's init is one process and the payload another, "
                   "so it needs at least %d (or run without the init, --no-init)",
                   (long long)p->pids_limit, PIDS_WITH_INIT);
}

/* The tiny init: the identity steps (inherited by the payload), the payload forked with
 * every signal blocked, then only reaping and forwarding, with no privilege. */
static void __attribute__((noreturn)) init_and_payload(const struct plan *p, struct child_fds *f) {
    static char found[PATH_MAX];
    struct stk_result r = {0};
    const char *path = identity_steps(p, f, 0, found, sizeof found);
    if (stk_init_block_signals(&r) != 0)
        step_failed(&r);
    STEP_STARTS("namespaces");
    pid_t child = fork();
    if (child < 0) {
        int err = errno;
        check_room(p, err);
        child_fail("namespaces", "[Errno %d] %s", err, strerror(err));
    }
    if (child == 0)
        payload_exec(p, f, path, 1);
    close(f->err_w);
    g_err_w = -1;
    if (f->tty_slave >= 0)
        close(f->tty_slave);
    /* The init kept root's capabilities for the payload (seccomp, then capabilities,
     * without no_new_privs); it needs none to reap and forward. */
    stk_init_shed_privileges(!p->nnp);
    _exit(stk_init_reap(child, f->status_w));
}

void child_main(const struct plan *p, struct child_fds *f) {
    g_err_w = f->err_w;
    if (p->exec_mode == EXEC_EXEC) /* oci exec: in the container's namespaces already */
        payload_alone(p, f, 1);
    /* Die with the runtime: an orphaned sandbox would escape its supervision. */
    OS_STEP("internal", prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0));
    /* Until GO (the id maps are written), what needs no maps: join the cgroup, clone the
     * host-side trees. v1: "0" to `tasks` through fds the runtime opened. */
    STEP_STARTS("cgroups");
    for (int i = 0; i < f->ntasks; i++) {
        if (write(f->tasks[i], "0", 1) != 1)
            child_fail("cgroups", "[Errno %d] %s", errno, strerror(errno));
        close(f->tasks[i]);
    }
    STEP_STARTS("namespaces");
    if (p->cgroup_ns) /* after the attach: the namespace's root is the sandbox's cgroup */
        OS_STEP("namespaces", unshare(CLONE_NEWCGROUP));
    STEP_STARTS("rootfs");
    struct trees t = {0};
    int roottree;
    open_sources(p, f, &t, &roottree);
    char g = 0;
    if (read(f->sync_r, &g, 1) != 1 || g != MSG_GO)
        _exit(EXIT_INTERNAL); /* the runtime gave up (and will clean up) */
    if (!p->pause_before_root)
        close(f->sync_r);
    /* CVE-2019-5736 class: non-dumpable, our /proc/<pid>/exe, fd/, mem are closed to the
     * payload. Only after GO: it makes /proc/<pid>/uid_map and gid_map root-owned. */
    OS_STEP("internal", prctl(PR_SET_DUMPABLE, 0, 0, 0, 0));
    STEP_STARTS("idmap");
    if (p->userns && p->setgroups)
        OS_STEP("idmap", setgroups(0, NULL));
    if (p->userns && (getuid() != 0 || getgid() != 0) && p->maps_root) {
        OS_STEP("idmap", setresgid(0, 0, 0));
        OS_STEP("idmap", setresuid(0, 0, 0));
    }
    keep_deathsig("idmap", f->status_w);
    /* the namespace-wide settings (executor/steps/netns.c), before the root is built */
    STEP_STARTS("namespaces");
    struct stk_result r = {0};
    struct stk_sysctl sysctl[FAST_MAX];
    for (int i = 0; i < p->nsysctl; i++)
        sysctl[i] = (struct stk_sysctl){p->sysctl[i].key, p->sysctl[i].value};
    if ((p->hostname[0] && stk_set_hostname(p->hostname, &r) != 0) ||
        stk_write_sysctls(sysctl, (size_t)p->nsysctl, &r) != 0 ||
        (p->loopback && stk_loopback_up(&r) != 0))
        step_failed(&r);
    if (p->pause_before_root) {
        /* OCI createRuntime/createContainer hooks run now, in and around our
         * namespaces: "h" to the runtime, "h" back when they ran. */
        STEP_STARTS("hygiene");
        if (write(f->created_w, &(char){MSG_HOOKS}, 1) != 1)
            child_fail("hygiene", "[Errno %d] %s", errno, strerror(errno));
        if (read(f->sync_r, &g, 1) != 1 || g != MSG_HOOKS)
            _exit(EXIT_INTERNAL); /* a hook failed: the runtime cleans up */
        close(f->sync_r);
    }
    STEP_STARTS("rootfs");
    build_root(p, &t, roottree);
    if (!p->init)
        payload_alone(p, f, 0);
    init_and_payload(p, f);
}
