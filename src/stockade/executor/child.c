/* The container's process, from its clone to execve, without an init (docs/EXECUTOR.md,
 * steps 5 to 10). A failed step writes "step: message" on the error pipe and exits with
 * the step's code (runner/codes.py). */
#define _GNU_SOURCE
#include "executor.h"

static int g_err_w = -1;

void child_fail(const char *step, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = snprintf(msg, sizeof msg, "%s: ", step);
    vsnprintf(msg + n, sizeof msg - (size_t)n, fmt, ap);
    va_end(ap);
    if (g_err_w >= 0) {
        ssize_t w = write(g_err_w, msg, strlen(msg));
        (void)w;
    }
    _exit(stk_exit_code(step));
}

/* A failed set-up step (executor/steps): its message to the runtime, its exit code. */
void step_failed(const struct stk_result *r) {
    child_fail(r->step, "%s", r->message);
}



static void apply_caps(const struct plan *p) {
    for (uint64_t cap = 0; cap <= p->last_cap_plan; cap++)
        if (!(p->bounding >> cap & 1))
            CHECK("capabilities", prctl(PR_CAPBSET_DROP, cap, 0, 0, 0));
    CHECK("capabilities", prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0));
    if (p->setgroups)
        CHECK("capabilities", setgroups((size_t)p->ngroups, p->groups));
    CHECK("capabilities", setresgid((gid_t)p->gid, (gid_t)p->gid, (gid_t)p->gid));
    CHECK("capabilities", setresuid((uid_t)p->uid, (uid_t)p->uid, (uid_t)p->uid));
    CHECK("capabilities", prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0));
    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2] = {
        {(uint32_t)p->effective, (uint32_t)p->permitted, (uint32_t)p->inheritable},
        {(uint32_t)(p->effective >> 32), (uint32_t)(p->permitted >> 32), (uint32_t)(p->inheritable >> 32)},
    };
    CHECK("capabilities", (int)syscall(SYS_capset, &hdr, data));
    CHECK("capabilities", prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0));
    for (int i = 0; i < p->nambient; i++)
        CHECK("capabilities", prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, p->ambient[i], 0, 0));
}

static rlim_t rl(uint64_t v) { return v == UINT64_MAX ? RLIM_INFINITY : (rlim_t)v; }

/* child._find: execvp's search, before seccomp, so a miss is reported (127). */
static const char *find_cmd(const struct plan *p, char *out, size_t outlen) {
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


static void keep_deathsig(int status_w) {
    CHECK("idmap", prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0));
    struct pollfd pfd = {status_w, POLLOUT, 0};
    if (poll(&pfd, 1, 0) > 0 && (pfd.revents & POLLERR))
        _exit(EXIT_INTERNAL); /* the runtime is gone: never run unsupervised */
}

void child_main(const struct plan *p, struct child_fds *f) {
    g_err_w = f->err_w;
    CHECK("internal", prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0));
    for (int i = 0; i < f->ntasks; i++) {
        if (write(f->tasks[i], "0", 1) != 1)
            child_fail("cgroups", "attach: %s", strerror(errno));
        close(f->tasks[i]);
    }
    if (p->cgroup_ns)
        CHECK("namespaces", unshare(CLONE_NEWCGROUP));
    struct trees t = {0};
    int roottree;
    open_sources(p, &t, &roottree);
    char g = 0;
    if (read(f->sync_r, &g, 1) != 1 || g != MSG_GO)
        _exit(EXIT_INTERNAL); /* the parent gave up (and will clean up) */
    close(f->sync_r);
    CHECK("internal", prctl(PR_SET_DUMPABLE, 0, 0, 0, 0));
    if (p->userns && p->setgroups)
        CHECK("idmap", setgroups(0, NULL));
    if (p->userns && (getuid() != 0 || getgid() != 0) && p->maps_root) {
        CHECK("idmap", setresgid(0, 0, 0));
        CHECK("idmap", setresuid(0, 0, 0));
    }
    keep_deathsig(f->status_w);
    /* the namespace-wide settings (executor/steps/netns.c), before the root is built */
    struct stk_result r = {0};
    struct stk_sysctl sysctl[FAST_MAX];
    for (int i = 0; i < p->nsysctl; i++)
        sysctl[i] = (struct stk_sysctl){p->sysctl[i].key, p->sysctl[i].value};
    if ((p->hostname[0] && stk_set_hostname(p->hostname, &r) != 0) ||
        stk_write_sysctls(sysctl, (size_t)p->nsysctl, &r) != 0 ||
        (p->loopback && stk_loopback_up(&r) != 0))
        step_failed(&r);
    build_root(p, &t, roottree);
    /* _payload_alone: session, identity steps, then the payload's own last steps */
    CHECK("hygiene", setsid());
    /* the first identity step: the LSM exec label, through the new root's /proc */
    if ((p->apparmor_profile != NULL || p->selinux_label != NULL) &&
        stk_lsm_exec_label("/proc", p->apparmor_profile, p->selinux_label, &r) != 0)
        step_failed(&r);
    for (int i = 0; i < p->nrlimits; i++) { /* raise_hard */
        struct rlimit cur;
        CHECK("rlimits", getrlimit((int)p->rlimits[i][0], &cur));
        rlim_t h = rl(p->rlimits[i][2]);
        if (cur.rlim_max == RLIM_INFINITY || (h != RLIM_INFINITY && h <= cur.rlim_max))
            continue;
        cur.rlim_max = h;
        CHECK("rlimits", setrlimit((int)p->rlimits[i][0], &cur));
    }
    if (p->nnp) {
        apply_caps(p);
        CHECK("no_new_privs", prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0));
        if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1)
            child_fail("no_new_privs", "the kernel did not keep no_new_privs");
    }
    CHECK("hygiene", (int)syscall(SYS_close_range, 3, ~0U, X_CLOSE_RANGE_CLOEXEC));
    int rootfd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
    CHECK("hygiene", rootfd);
    const char *cwd = p->cwd;
    while (*cwd == '/')
        cwd++;
    int cwdfd = x_openat2(rootfd, *cwd ? cwd : ".", O_PATH | O_DIRECTORY,
                          X_RESOLVE_IN_ROOT | X_RESOLVE_NO_MAGICLINKS);
    if (cwdfd < 0)
        child_fail("hygiene", "cwd %s: %s", p->cwd, strerror(errno));
    close(rootfd);
    CHECK("hygiene", fchdir(cwdfd));
    close(cwdfd);
    if (p->has_umask)
        umask((mode_t)p->umask);
    char cwdbuf[PATH_MAX];
    if (getcwd(cwdbuf, sizeof cwdbuf) == NULL)
        child_fail("hygiene", "cwd %s is not reachable from the root", p->cwd);
    char found[PATH_MAX];
    const char *path = find_cmd(p, found, sizeof found);
    for (int i = 0; i < p->nrlimits; i++) {
        struct rlimit r = {rl(p->rlimits[i][1]), rl(p->rlimits[i][2])};
        if (setrlimit((int)p->rlimits[i][0], &r) != 0)
            child_fail("rlimits", "%d=%llu/%llu: %s", (int)p->rlimits[i][0],
                       (unsigned long long)p->rlimits[i][1], (unsigned long long)p->rlimits[i][2],
                       strerror(errno));
    }
    for (int s = 1; s < 65; s++)
        if (s != SIGKILL && s != SIGSTOP && s != 32 && s != 33)
            signal(s, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    /* the gate (child._gate): "created", then wait for `start` */
    CHECK("hygiene", prctl(PR_SET_PDEATHSIG, 0, 0, 0, 0));
    if (write(f->created_w, &(char){MSG_CREATED}, 1) != 1)
        _exit(EXIT_INTERNAL);
    close(f->created_w);
    CHECK("hygiene", fcntl(f->gate, F_SETFL, 0));
    unsigned char got[1 + MSG_START_LENGTH_BYTES];
    size_t have = 0;
    while (have < sizeof got) {
        ssize_t n = read(f->gate, got + have, sizeof got - have);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        have += (size_t)n;
    }
    if (have != sizeof got || got[0] != MSG_START)
        _exit(EXIT_INTERNAL); /* deleted before start: never run the payload */
    uint64_t slen = 0;
    for (int i = MSG_START_LENGTH_BYTES; i >= 1; i--) /* little-endian */
        slen = slen << 8 | got[i];
    for (unsigned char sink[4096]; slen > 0;) { /* no startContainer hooks: unused */
        ssize_t n = read(f->gate, sink, slen < sizeof sink ? slen : sizeof sink);
        if (n <= 0)
            break;
        slen -= (uint64_t)n;
    }
    close(f->gate);
    g_err_w = -1; /* nobody reads it any more: failures show as the exit status */
    for (int i = 0; i < 2; i++) {
        if (p->bpf_len[i] == 0)
            continue;
        struct sock_fprog prog = {(unsigned short)(p->bpf_len[i] / 8), (struct sock_filter *)p->bpf[i]};
        if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, (unsigned)p->seccomp_flags, &prog) < 0)
            _exit(stk_exit_code("seccomp"));
    }
    if (!p->nnp)
        apply_caps(p);
    execve(path, p->argv, p->env);
    _exit(errno == ENOENT ? 127 : 126);
}
