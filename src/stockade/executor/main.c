/* The executor verb: `stockade-oci --executor FD` (docs/EXECUTOR.md, "Run documents").
 *
 * The runtime (runner/launcher.py for `stockade run`, the API and `oci create`;
 * oci/execute.py for `oci exec`) planned the run, made the pipes and any idmapped trees,
 * and spawned this program with the plan in FD. This process joins what the plan says to
 * join (oci exec: cgroups, then namespaces, user first) or makes and limits the planned
 * cgroups, makes the mountpoints, clones the container's process with CLONE_PARENT (so
 * that it is the runtime's own child: the runtime attaches its network, supervises and
 * reaps it), writes its direct id maps, reports on the report fd and exits. The process
 * carries the plan out (child.c). */
#define _GNU_SOURCE
#include "executor.h"
#include <sys/fsuid.h>

static int g_err = -1;
/* The cgroup directories this executor made: removed again when it fails before the
   clone (after it, they are the runtime's to remove). */
static char g_made[FAST_MAX][PATH_MAX];
static int g_nmade;

static void undo_cgroups(void) {
    for (int i = g_nmade - 1; i >= 0; i--)
        rmdir(g_made[i]);
    g_nmade = 0;
}

static void __attribute__((noreturn, format(printf, 2, 3))) fail(const char *step, const char *fmt, ...) {
    struct stk_result r = {0};
    r.step = step;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r.message, sizeof r.message, fmt, ap);
    va_end(ap);
    undo_cgroups();
    if (stk_report(g_err >= 0 ? g_err : 2, &r) != 0 && g_err >= 0)
        stk_report(2, &r);
    _exit(stk_exit_code(step));
}

static char *read_all(int fd, size_t *len) {
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    if (buf == NULL)
        return NULL;
    for (;;) {
        if (n + 1 >= cap) {
            char *more = realloc(buf, cap *= 2);
            if (more == NULL) {
                free(buf);
                return NULL;
            }
            buf = more;
        }
        ssize_t got = pread(fd, buf + n, cap - n - 1, (off_t)n);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            free(buf);
            return NULL;
        }
        if (got == 0)
            break;
        n += (size_t)got;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

static int fd_field(struct rd *r, json_object *o, const char *key) {
    return (int)(int64_t)r_int(r, o, key);
}

static void read_fds(struct rd *r, json_object *fds, struct child_fds *f, int *report) {
    *report = fd_field(r, fds, "report");
    f->err_w = fd_field(r, fds, "err");
    f->sync_r = fd_field(r, fds, "sync");
    f->status_w = fd_field(r, fds, "status");
    f->created_w = fd_field(r, fds, "created");
    f->gate = fd_field(r, fds, "gate");
    f->tty_slave = fd_field(r, fds, "tty_slave");
    f->tty_sock = fd_field(r, fds, "tty_socket");
    f->listener = fd_field(r, fds, "listener");
    json_object *trees = r_list(r, fds, "trees", FAST_MAX + 1, &f->ntrees);
    for (int i = 0; i < f->ntrees; i++) {
        json_object *t = r_tuple(r, trees, i, 2, "fds.trees");
        f->trees[i].key = r_strv(r, r_item(t, 0), "fds.trees");
        f->trees[i].fd = (int)(int64_t)r_intv(r, r_item(t, 1), "fds.trees");
    }
}

/* oci exec: the container's cgroups (cgroup.procs fds the runtime opened), then its
   namespaces in the order given (user first: the others are joined with its
   capabilities; mount last). Returns whether anything is joined. */
static int join(struct rd *r, json_object *doc) {
    json_object *j = r_field(r, doc, "join", json_type_object, 1);
    if (j == NULL)
        return 0;
    int nprocs, nns;
    json_object *procs = r_list(r, j, "cgroup_procs", FAST_MAX, &nprocs);
    json_object *ns = r_list(r, j, "namespaces", FAST_MAX, &nns);
    if (r->bad)
        fail("internal", "run document: %s", r->why);
    for (int i = 0; i < nprocs; i++) {
        int fd = (int)(int64_t)r_intv(r, r_item(procs, i), "join.cgroup_procs");
        if (write(fd, "0", 1) != 1)
            fail("cgroups", "joining the container's cgroup: %s", strerror(errno));
        close(fd);
    }
    for (int i = 0; i < nns; i++) {
        json_object *t = r_tuple(r, ns, i, 2, "join.namespaces");
        const char *name = r_strv(r, r_item(t, 0), "join.namespaces");
        int fd = (int)(int64_t)r_intv(r, r_item(t, 1), "join.namespaces");
        if (r->bad)
            fail("internal", "run document: %s", r->why);
        if (setns(fd, 0) != 0)
            fail("namespaces", "setns %s: %s", name, strerror(errno));
        close(fd);
    }
    return 1;
}

/* The user namespace about to be made is owned by host uid `owner` (its per-user
   counts are charged there, not to root's): only the effective uid changes, the fs uid
   stays 0 (host paths open as before) and the effective capabilities the change clears
   are raised again. */
static void become_owner(uint64_t owner) {
    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct caps[2];
    if (syscall(SYS_capget, &hdr, caps) != 0)
        fail("namespaces", "capget: %s", strerror(errno));
    if (setresuid((uid_t)-1, (uid_t)owner, (uid_t)-1) != 0)
        fail("namespaces", "cannot create the user namespace as its owner, uid %llu: %s",
             (unsigned long long)owner, strerror(errno));
    setfsuid(0);
    if (syscall(SYS_capset, &hdr, caps) != 0)
        fail("namespaces", "capset: %s", strerror(errno));
}

/* One line to the runtime on the report pipe: "KIND<TAB>JSON\n" (json: the value). */
static void report_line(int report, const char *kind, json_object *value) {
    const char *text = json_object_to_json_string_ext(value, JSON_C_TO_STRING_PLAIN);
    if (dprintf(report, "%s\t%s\n", kind, text) < 0)
        fail("internal", "report: %s", strerror(errno));
    json_object_put(value);
}

/* OCI create: the runtime records what was reported in the container's state before we
   go on (a runtime killed in between leaves nothing `delete` cannot find). */
static void wait_recorded(int sync) {
    char byte = 0;
    if (read(sync, &byte, 1) != 1 || byte != MSG_RECORDED) {
        undo_cgroups();
        _exit(EXIT_INTERNAL); /* the runtime gave up: it cleans up what it recorded */
    }
}

/* The plan's cgroups, as the front end makes them (cgroups.c): the directories reported
   (planned, then made), the limits written, the notes of limits this host cannot apply,
   then the v1 `tasks` files the child writes itself into. Returns the v2 directory's fd
   (clone3 puts the child there) or -1. */
static int make_cgroups(const struct plan *p, int report, struct child_fds *f) {
    STEP_STARTS("cgroups");
    static char bases[FAST_MAX][PATH_MAX], ctldir[FAST_MAX][PATH_MAX];
    char rel[PATH_MAX], why[2 * PATH_MAX];
    if (cgroup_paths(p, p->cg_name, rel, sizeof rel, bases, ctldir, why, sizeof why) != 0)
        fail("cgroups", "%s", why);
    if (p->cg_record) {
        json_object *planned = json_object_new_array();
        for (int i = 0; i < p->nctl; i++) {
            int seen = 0;
            for (int k = 0; k < i; k++)
                seen |= strcmp(ctldir[k], ctldir[i]) == 0;
            if (!seen)
                json_object_array_add(planned, json_object_new_string(ctldir[i]));
        }
        report_line(report, "planned", planned);
        wait_recorded(f->sync_r);
    }
    json_object *made = json_object_new_object();
    for (int i = 0; i < p->nctl; i++) {
        int seen = 0;
        for (int k = 0; k < g_nmade; k++)
            seen |= strcmp(g_made[k], ctldir[i]) == 0;
        if (!seen) { /* co-mounted controllers (cpu,cpuacct) share one directory */
            if (cgroup_make(p, bases[i], rel, ctldir[i], p->cg_mode == 1 &&
                            strcmp(p->ctl[i].name, "cpuset") == 0, why, sizeof why) != 0)
                fail("cgroups", "%s", why);
            memcpy(g_made[g_nmade++], ctldir[i], PATH_MAX);
        }
        json_object_object_add(made, p->ctl[i].name, json_object_new_string(ctldir[i]));
    }
    report_line(report, "cgroups", made);
    if (p->cg_record)
        wait_recorded(f->sync_r);
    struct cg_notes notes = {0};
    int cgfd = -1;
    if (cgroup_limit(p, ctldir, &cgfd, &notes, why, sizeof why) != 0)
        fail("cgroups", "%s", why);
    for (int i = 0; i < notes.n; i++)
        report_line(report, "note", json_object_new_string(notes.text[i]));
    for (int i = 0; i < g_nmade && p->cg_mode == 1; i++) {
        char path[PATH_MAX + 8];
        snprintf(path, sizeof path, "%.*s/tasks", PATH_MAX - 1, g_made[i]);
        if ((f->tasks[f->ntasks++] = open(path, O_WRONLY | O_CLOEXEC)) < 0)
            fail("cgroups", "attach: [Errno %d] %s: '%s'", errno, strerror(errno), path);
    }
    return cgfd;
}

void executor_main(const char *fd_arg) {
    char *end = NULL;
    long plan_fd = strtol(fd_arg, &end, 10);
    if (end == fd_arg || *end != '\0' || plan_fd < 0)
        fail("internal", "--executor %s: an fd number expected", fd_arg);
    size_t len = 0;
    char *text = read_all((int)plan_fd, &len);
    if (text == NULL)
        fail("internal", "reading the plan: %s", strerror(errno));
    close((int)plan_fd);
    json_tokener *tok = json_tokener_new();
    json_object *doc = tok ? json_tokener_parse_ex(tok, text, (int)len) : NULL;
    if (doc == NULL || json_tokener_get_error(tok) != json_tokener_success ||
        json_tokener_get_parse_end(tok) != len)
        fail("internal", "the plan is not one JSON document");
    json_tokener_free(tok);
    struct rd r = {0};
    json_object *fds = r_obj(&r, doc, "fds");
    struct child_fds f;
    child_fds_none(&f);
    int report = -1, cgfd = -1;
    read_fds(&r, fds, &f, &report);
    g_err = f.err_w;
    child_report_to(f.err_w); /* the tests' faults (STEP_STARTS) report there too */
    if (r.bad)
        fail("internal", "run document: %s", r.why);
    if (r_int(&r, doc, "version") != PLAN_VERSION)
        fail("internal", "run document: version %d expected", PLAN_VERSION);
    struct plan p;
    if (!read_plan(&r, doc, &p))
        fail("internal", "run document: %s", r.why);
    json_object *j = r_field(&r, doc, "join", json_type_object, 1);
    /* CVE-2019-5736: nothing inside may open our /proc/PID/exe, mem, fd/ */
    if (j != NULL && prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0)
        fail("internal", "non-dumpable: %s", strerror(errno));
    int joined = join(&r, doc);
    if (p.cg_mode != 0 && !joined)
        cgfd = make_cgroups(&p, report, &f);
    char why[PATH_MAX + 256];
    /* with the runtime's credentials, before the clone: the mountpoints a bare rootfs
       directory lacks (as runc), resolved inside it */
    if (!joined && prepare_mountpoints(&p, why, sizeof why) != 0)
        fail("rootfs", "%s", why);
    if (p.has_owner)
        become_owner(p.owner);
    long pid = clone_container((joined ? 0 : p.clone_flags) | CLONE_PARENT, cgfd);
    if (pid < 0)
        fail("namespaces", "clone: %s", strerror(errno));
    if (pid == 0) {
        close(report);
        if (cgfd >= 0)
            close(cgfd);
        child_main(&p, &f);
    }
    /* The id maps, as the front end writes them (clone.c), as root again (a pool range's
       owner is only the namespace's owner). newuidmap's are the runtime's to write. */
    if (!joined && p.userns && p.maps_direct) {
        if (p.has_owner && setresuid((uid_t)-1, 0, (uid_t)-1) != 0)
            snprintf(why, sizeof why, "back to root: %s", strerror(errno));
        else if (write_id_maps(&p, pid, why, sizeof why) == 0)
            why[0] = '\0';
        if (test_fault_asked("idmap"))
            snprintf(why, sizeof why, "fault injected (test)");
        if (why[0]) { /* the process never runs: killed, reported for the runtime to reap */
            kill((pid_t)pid, SIGKILL);
            report_line(report, "pid", json_object_new_int64(pid));
            g_nmade = 0; /* the runtime removes the cgroups with the process it reaps */
            fail("idmap", "%s", why);
        }
    }
    report_line(report, "pid", json_object_new_int64(pid));
    _exit(0);
}
