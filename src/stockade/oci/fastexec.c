/* The front end's create/run: execute a plan that `stockade oci` compiled earlier.
 *
 * Linked with frontend.c (frontend.h); the set-up steps themselves are the executor's
 * (src/stockade/executor/: plan_read.c, rootfs.c, child.c, steps/). `stockade oci create|run` (Python) translates config.json into
 * a runner plan; when the front end handed it the call, it also stores that plan, for
 * configurations this file can carry out, in `<root>/.fast/<key>` (oci/fastplan.py
 * writes it). The next create/run of the same bundle with the same config.json (byte for
 * byte, every file the translation read unchanged) is done here, without an interpreter:
 * the executor's steps, in the order of docs/EXECUTOR.md.
 *
 * Any miss, any unexpected input and any failure before the container's process was
 * started undoes what was made (process, cgroups, state directory) and falls back to
 * the Python runtime, which does everything anew and reports errors as usual; so both
 * paths differ only in speed. STOCKADE_FAST=require makes a miss or a failure print why
 * and exit 125 instead (the tests use it to prove which path ran); STOCKADE_FAST=off
 * never uses a stored plan.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <pwd.h>
#include <sys/wait.h>
#include <time.h>
#include "frontend.h"

static char g_key[17]; /* this bundle's key, once known: Python stores the plan under it */
static int fast_mode_require(void) {
    const char *m = getenv("STOCKADE_FAST");
    return m != NULL && strcmp(m, "require") == 0;
}

/* Not applicable, or undone: Python does it all (or, when required, say why and stop). */
static void __attribute__((noreturn, format(printf, 1, 2))) miss(const char *fmt, ...) {
    if (fast_mode_require()) {
        va_list ap;
        va_start(ap, fmt);
        fprintf(stderr, "stockade-oci: stored plan not used: ");
        vfprintf(stderr, fmt, ap);
        fprintf(stderr, "\n");
        va_end(ap);
        _exit(125);
    }
    if (getenv("STOCKADE_FAST_PLANNED") != NULL) {
        /* Python made the plan just now and this still missed: it does it all itself */
        unsetenv("STOCKADE_FAST_PLANNED");
    } else if (g_key[0]) {
        /* Python translates config.json, stores the plan and execs us again (once) */
        char self[PATH_MAX];
        ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
        if (n > 0) {
            self[n] = '\0';
            setenv("STOCKADE_FAST_STAMP", STOCKADE_STAMP, 1);
            setenv("STOCKADE_FAST_KEY", g_key, 1);
            setenv("STOCKADE_FAST_FRONTEND", self, 1);
        }
    }
    fallback();
}

/* --- reading a stored plan (executor/plan_json.py writes it; docs/EXECUTOR.md) ------ */

static uint64_t fnv1a(uint64_t h, const void *data, size_t n) {
    const unsigned char *b = data;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

static unsigned char *read_file(const char *path, int dirfd, size_t *len, int trusted) {
    int fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return NULL;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > (1 << 24) ||
        (trusted && (st.st_uid != geteuid() || (st.st_mode & 022)))) {
        close(fd);
        return NULL;
    }
    unsigned char *buf = malloc((size_t)st.st_size + 1);
    size_t got = 0;
    while (buf != NULL && got < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    if (buf == NULL || got != (size_t)st.st_size) {
        free(buf);
        return NULL;
    }
    buf[got] = '\0';
    *len = got;
    return buf;
}

static long read_long_file(const char *path) {
    char buf[64];
    return read_text(path, buf, sizeof buf) < 0 ? -1 : strtol(buf, NULL, 10);
}

/* The document of a stored plan, its version checked; NULL with r->why. */
static json_object *parse_plan(struct rd *r, const unsigned char *data, size_t len) {
    json_tokener *tok = json_tokener_new();
    if (tok == NULL) {
        r_fail(r, "out of memory");
        return NULL;
    }
    json_object *doc = json_tokener_parse_ex(tok, (const char *)data, (int)len);
    enum json_tokener_error err = json_tokener_get_error(tok);
    size_t used = json_tokener_get_parse_end(tok);
    json_tokener_free(tok);
    while (used < len && (data[used] == '\n' || data[used] == ' '))
        used++;
    if (doc == NULL || err != json_tokener_success || used != len) {
        r_fail(r, "not JSON (%s)", doc == NULL ? json_tokener_error_desc(err) : "trailing data");
        json_object_put(doc);
        return NULL;
    }
    if (json_object_get_type(doc) != json_type_object) {
        r_fail(r, "an object expected");
        json_object_put(doc);
        return NULL;
    }
    json_object *v = r_field(r, doc, "version", json_type_int, 0);
    if (v != NULL && json_object_get_int64(v) != PLAN_VERSION)
        r_fail(r, "version %lld, this build reads %d", (long long)json_object_get_int64(v),
               PLAN_VERSION);
    if (r->bad) {
        json_object_put(doc);
        return NULL;
    }
    return doc;
}

/* The dependency list: paths whose symlinks the translation resolved, as they were. */
static int deps_unchanged(struct rd *r, json_object *doc) {
    int n;
    json_object *deps = r_list(r, doc, "deps", FAST_MAX, &n);
    for (int i = 0; i < n; i++) {
        json_object *t = r_tuple(r, deps, i, 2, "deps");
        const char *path = r_strv(r, r_item(t, 0), "deps");
        const char *want = r_strv(r, r_item(t, 1), "deps");
        char got[PATH_MAX];
        if (r->bad || realpath(path, got) == NULL || strcmp(got, want) != 0)
            return 0;
    }
    return !r->bad;
}

/* The stored plan for this bundle and config.json, or a miss. */
static void load_plan(const char *root, const char *bundle_arg, struct plan *p) {
    char bundle[PATH_MAX];
    if (realpath(bundle_arg, bundle) == NULL)
        miss("bundle %s: %s", bundle_arg, strerror(errno));
    int bfd = open(bundle, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    size_t clen = 0;
    unsigned char *config = bfd >= 0 ? read_file("config.json", bfd, &clen, 0) : NULL;
    if (bfd >= 0)
        close(bfd);
    if (config == NULL)
        miss("no readable config.json in %s", bundle);
    uint64_t h = fnv1a(0xcbf29ce484222325ULL, bundle, strlen(bundle) + 1);
    h = fnv1a(h, config, clen);
    snprintf(g_key, sizeof g_key, "%016llx", (unsigned long long)h);
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/.fast/%016llx", root, (unsigned long long)h) >= (int)sizeof path)
        miss("state root path too long");
    size_t len = 0;
    unsigned char *data = read_file(path, AT_FDCWD, &len, 1);
    if (data == NULL)
        miss("no stored plan for this bundle and config.json");
    struct rd r = {0, ""};
    json_object *doc = parse_plan(&r, data, len);
    free(data);
    if (doc == NULL)
        miss("stored plan is malformed: %s", r.why);
    const char *stamp = r_str(&r, doc, "build");
    if (r.bad || strcmp(stamp, STOCKADE_STAMP) != 0)
        miss("stored plan from another build");
    const char *b = r_str(&r, doc, "bundle");
    json_object *stored = r_field(&r, doc, "config", json_type_string, 0);
    if (r.bad)
        miss("stored plan is malformed: %s", r.why);
    if (strcmp(b, bundle) != 0 || (size_t)json_object_get_string_len(stored) != clen ||
        memcmp(json_object_get_string(stored), config, clen) != 0)
        miss("stored plan is for another bundle or config.json");
    free(config);
    json_object *host = r_obj(&r, doc, "host");
    uint64_t last_cap = r_int(&r, host, "cap_last_cap"), euid = r_int(&r, host, "euid");
    const char *release = r_str(&r, host, "kernel");
    if (r.bad)
        miss("stored plan is malformed: %s", r.why);
    struct utsname uts;
    if ((long)last_cap != read_long_file("/proc/sys/kernel/cap_last_cap") || euid != geteuid() ||
        uname(&uts) != 0 || strcmp(release, uts.release) != 0)
        miss("host facts changed since the plan was stored");
    if (!deps_unchanged(&r, doc)) {
        if (r.bad)
            miss("stored plan is malformed: %s", r.why);
        miss("a file the plan was made from changed");
    }
    if (!read_plan(&r, doc, p))
        miss("stored plan is malformed: %s", r.why);
    p->bundle = b;
#ifdef STOCKADE_TEST_HOOKS
    /* The tests make a hybrid host's unified mount count as v2 (STOCKADE_TEST_CGROUP_V2=1,
       as tests/support/hooks.py makes runner.cgroups.detect do): a plan is used only under
       the view it was made in. On a host whose /sys/fs/cgroup is cgroup2 itself the
       switch changes nothing. */
    const char *forced = getenv("STOCKADE_TEST_CGROUP_V2");
    struct statfs top;
    if (statfs("/sys/fs/cgroup", &top) == 0 && top.f_type != CGROUP2_SUPER_MAGIC &&
        (forced != NULL && strcmp(forced, "1") == 0) != (p->cg_mode == 2))
        miss("host facts changed since the plan was stored (STOCKADE_TEST_CGROUP_V2)");
#endif
}

/* --- the state (state.json: stockade.oci.state reads and writes it too) ---------- */

struct cstate {
    const char *id, *created, *owner;
    long pid, creator;
    unsigned long long starttime;
    /* while creating: `delete --force` signals the creator only if its start time
       still matches (a reused pid is never signalled) */
    unsigned long long creator_starttime;
    int creating;
    int ndirs;
    char dirs[FAST_MAX][PATH_MAX];
    /* the directories about to be made (lifecycle.create's cgroup_pending): a runtime
       killed between a mkdir and the state write leaves nothing delete cannot find */
    int npending;
    char (*pending)[PATH_MAX];
};

static int write_atomic(int dirfd, const char *name, const void *data, size_t n) {
    char tmp[64];
    snprintf(tmp, sizeof tmp, "%s.tmp", name);
    int fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0)
        return -1;
    ssize_t w = write(fd, data, n);
    close(fd);
    if (w != (ssize_t)n || renameat(dirfd, tmp, dirfd, name) != 0) {
        unlinkat(dirfd, tmp, 0);
        return -1;
    }
    return 0;
}

static json_object *string_list(char (*items)[PATH_MAX], int n) {
    json_object *list = json_object_new_array();
    for (int i = 0; list != NULL && i < n; i++)
        json_object_array_add(list, json_object_new_string(items[i]));
    return list;
}

/* As stockade.oci.lifecycle.create's `data` dict, the same keys in the same order. */
static int write_state(int dirfd, const struct plan *p, const struct cstate *s) {
    json_object *o = json_object_new_object();
    if (o == NULL)
        return -1;
    json_object_object_add(o, "id", json_object_new_string(s->id));
    json_object_object_add(o, "pid", json_object_new_int64(s->pid));
    json_object_object_add(o, "creator", json_object_new_int64(s->creator));
    if (s->creating)
        json_object_object_add(o, "creator_starttime",
                               json_object_new_int64((int64_t)s->creator_starttime));
    json_object_object_add(o, "creating", json_object_new_boolean(s->creating));
    json_object_object_add(o, "bundle", json_object_new_string(p->bundle));
    json_object_object_add(o, "rootfs", json_object_new_string(p->st_rootfs));
    json_object_object_add(o, "created", json_object_new_string(s->created));
    json_object_object_add(o, "owner", json_object_new_string(s->owner));
    json_object *ann = json_object_new_object();
    for (int i = 0; ann != NULL && i < p->nann; i++)
        json_object_object_add(ann, p->ann[i].key, json_object_new_string(p->ann[i].value));
    json_object_object_add(o, "annotations", ann);
    json_object_object_add(o, "cgroup_dirs", string_list(((struct cstate *)s)->dirs, s->ndirs));
    json_object_object_add(o, "cgroup_pending", string_list(s->pending, s->npending));
    json_object_object_add(o, "start_hooks", json_object_new_boolean(0));
    json_object *hooks = json_object_new_object();
    if (hooks != NULL) {
        json_object_object_add(hooks, "poststart", json_object_new_array());
        json_object_object_add(hooks, "poststop", json_object_new_array());
    }
    json_object_object_add(o, "hooks", hooks);
    if (!s->creating)
        json_object_object_add(o, "starttime", json_object_new_int64((int64_t)s->starttime));
    size_t n = 0;
    const char *text = json_object_to_json_string_length(
        o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &n);
    int rc = text == NULL ? -1 : write_atomic(dirfd, "state.json", text, n);
    json_object_put(o);
    return rc;
}

/* --- the container's process: the executor's child_main (executor/child.c) -------- */

/* --- the runtime's side (lifecycle.create / launcher.launch_held) ----------------- */

/* translate._home: the user's home in the rootfs's /etc/passwd, read inside the root
   (its symlinks resolved against it), else "/". Appended to the environment last. */
static void add_home(struct plan *p) {
    static char home[PATH_MAX + 8];
    const char *value = "/";
    static char buf[1 << 20]; /* a passwd file larger than 1 MiB: HOME=/ */
    ssize_t n = 0;
    int root = open(p->rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (root >= 0) {
        struct x_open_how how = {O_RDONLY | O_CLOEXEC, 0, X_RESOLVE_IN_ROOT | X_RESOLVE_NO_MAGICLINKS};
        int fd = (int)syscall(SYS_openat2, root, "etc/passwd", &how, sizeof how);
        close(root);
        while (fd >= 0 && n < (ssize_t)sizeof buf - 1) {
            ssize_t got = read(fd, buf + n, sizeof buf - 1 - (size_t)n);
            if (got <= 0)
                break;
            n += got;
        }
        if (fd >= 0)
            close(fd);
        if (n >= (ssize_t)sizeof buf - 1)
            n = 0;
    }
    char uid[24];
    snprintf(uid, sizeof uid, "%llu", (unsigned long long)p->home_uid);
    buf[n] = '\0';
    char *save = NULL;
    for (char *line = n > 0 ? strtok_r(buf, "\n", &save) : NULL; line; line = strtok_r(NULL, "\n", &save)) {
        char *f[7] = {0};
        int nf = 0;
        for (char *c = line; nf < 7; nf++) {
            f[nf] = c;
            c = strchr(c, ':');
            if (c == NULL) {
                nf++;
                break;
            }
            *c++ = '\0';
        }
        if (nf >= 6 && strcmp(f[2], uid) == 0) {
            value = f[5][0] ? f[5] : "/";
            break;
        }
    }
    snprintf(home, sizeof home, "HOME=%s", value);
    p->env[p->nenv++] = home;
    p->env[p->nenv] = NULL;
}

static void now_rfc3339(char *out, size_t n) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char base[32];
    strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, n, "%s.%09ldZ", base, ts.tv_nsec);
}

#ifdef STOCKADE_TEST_HOOKS
/* Tests only: stop here when STOCKADE_TEST_PAUSE names this point of create, so that a
   test can SIGKILL it exactly there (tests/support/hooks.py has the same points for the
   Python path). The tests' own build defines STOCKADE_TEST_HOOKS; the installed front end
   has no such points. */
static void pause_for_tests(const char *point) {
    const char *want = getenv("STOCKADE_TEST_PAUSE");
    if (want != NULL && strcmp(want, point) == 0)
        raise(SIGSTOP);
}

/* `--read-plan FILE`: read a plan as create does (no host checks) and print what was
   read, or why it is refused (exit 1): the tests' check of this reader, without root. */
void read_plan_for_tests(const char *path) {
    size_t len = 0;
    unsigned char *data = read_file(path, AT_FDCWD, &len, 0);
    struct rd r = {0, ""};
    struct plan p;
    json_object *doc = data != NULL ? parse_plan(&r, data, len) : NULL;
    if (data == NULL)
        r_fail(&r, "%s: cannot read", path);
    if (doc != NULL)
        read_plan(&r, doc, &p);
    if (r.bad) {
        printf("refused: %s\n", r.why);
        fflush(stdout);
        _exit(1);
    }
    printf("argv0=%s mounts=%d cgroup=v%d writes=%d devprog=%zu filters=%zu,%zu rlimits=%d",
           p.argv[0], p.nmounts, (int)p.cg_mode, p.ncgw, p.devprog_len, p.bpf_len[0],
           p.bpf_len[1], p.nrlimits);
    for (int i = 0; i < p.nrlimits; i++)
        printf(" %llu:%llu:%llu", (unsigned long long)p.rlimits[i][0],
               (unsigned long long)p.rlimits[i][1], (unsigned long long)p.rlimits[i][2]);
    printf(" lsm=%s,%s uid_map=%s", p.apparmor_profile ? p.apparmor_profile : "-",
           p.selinux_label ? p.selinux_label : "-", p.uid_map);
    printf("maps_root=%d home=%d oom=%d:%lld\n", (int)p.maps_root, (int)p.home_lookup,
           (int)p.has_oom, (long long)p.oom);
    fflush(stdout);
    _exit(0);
}
#else
#define pause_for_tests(point) ((void)0)
#endif

struct made {
    struct cstate st;
    int dirfd;
    char dir[PATH_MAX];
    long pid;
};

/* Undo everything made so far (lifecycle.create's except branch). */
static void undo(struct made *m) {
    if (m->pid > 0) {
        kill((pid_t)m->pid, SIGKILL);
        waitpid((pid_t)m->pid, NULL, 0);
    }
    for (int i = 0; i < m->st.ndirs; i++)
        kill_and_rmdir(m->st.dirs[i]);
    if (m->dirfd >= 0) {
        DIR *d = fdopendir(dup(m->dirfd));
        struct dirent *e;
        while (d != NULL && (e = readdir(d)) != NULL)
            if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
                unlinkat(m->dirfd, e->d_name, 0);
        if (d != NULL)
            closedir(d);
        close(m->dirfd);
        rmdir(m->dir);
    }
}

static void __attribute__((noreturn, format(printf, 2, 3))) undo_miss(struct made *m, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    undo(m);
    miss("%s", msg);
}

/* cgroups.create + apply (executor/cgroups.c), each directory recorded in the state at
   once. Returns the v2 directory (O_PATH, for clone3) or -1 for v1, where the child joins
   through `tasks`. */
static int make_cgroups(struct made *m, const struct plan *p, const char *id,
                        char ctldir[][PATH_MAX]) {
    static char bases[FAST_MAX][PATH_MAX];
    char rel[PATH_MAX], why[2 * PATH_MAX];
    if (cgroup_paths(p, id, rel, sizeof rel, bases, ctldir, why, sizeof why) != 0)
        undo_miss(m, "%s", why);
    /* recorded before the first mkdir (V1Cgroup.create's on_planned) */
    m->st.pending = ctldir;
    m->st.npending = p->nctl;
    if (write_state(m->dirfd, p, &m->st) != 0)
        undo_miss(m, "state: %s", strerror(errno));
    pause_for_tests("planned");
    for (int i = 0; i < p->nctl; i++) {
        int seen = 0;
        for (int j = 0; j < m->st.ndirs; j++)
            seen |= strcmp(m->st.dirs[j], ctldir[i]) == 0;
        if (seen)
            continue; /* co-mounted controllers (cpu,cpuacct) */
        if (cgroup_make(p, bases[i], rel, ctldir[i], strcmp(p->ctl[i].name, "cpuset") == 0,
                        why, sizeof why) != 0)
            undo_miss(m, "%s", why);
        memcpy(m->st.dirs[m->st.ndirs++], ctldir[i], PATH_MAX); /* both PATH_MAX arrays */
    }
    /* sorted, as V1Cgroup.paths() */
    for (int i = 1; i < m->st.ndirs; i++)
        for (int j = i; j > 0 && strcmp(m->st.dirs[j - 1], m->st.dirs[j]) > 0; j--) {
            char tmp[PATH_MAX];
            memcpy(tmp, m->st.dirs[j], PATH_MAX);
            memcpy(m->st.dirs[j], m->st.dirs[j - 1], PATH_MAX);
            memcpy(m->st.dirs[j - 1], tmp, PATH_MAX);
        }
    if (m->st.ndirs && write_state(m->dirfd, p, &m->st) != 0)
        undo_miss(m, "state: %s", strerror(errno));
    pause_for_tests("cgroups");
    int cgfd;
    /* a stored plan has no limit this host may skip (fastplan.py): no notes */
    if (cgroup_limit(p, ctldir, &cgfd, NULL, why, sizeof why) != 0)
        undo_miss(m, "%s", why);
    return cgfd;
}

static int g_forward_pid;
static void forward_signal(int sig) {
    if (g_forward_pid > 0)
        kill(g_forward_pid, sig);
}

/* translate.check_grantable: the capabilities capset would refuse in the container's
   process (after `start`, unreported, without no_new_privs): 0 sends create to Python. */
static int caps_grantable(const struct plan *p) {
    uint64_t inh = 0, prm = 0, bnd = 0;
    int seen = 0;
    FILE *f = fopen("/proc/self/status", "re");
    if (f == NULL)
        return 0;
    char line[256];
    while (fgets(line, sizeof line, f) != NULL) {
        unsigned long long v;
        if (sscanf(line, "CapInh: %llx", &v) == 1) { inh = v; seen |= 1; }
        else if (sscanf(line, "CapPrm: %llx", &v) == 1) { prm = v; seen |= 2; }
        else if (sscanf(line, "CapBnd: %llx", &v) == 1) { bnd = v; seen |= 4; }
    }
    fclose(f);
    if (seen != 7)
        return 0;
    uint64_t all = p->last_cap_plan >= 63 ? ~0ULL : (1ULL << (p->last_cap_plan + 1)) - 1;
    uint64_t held = p->userns ? all : prm;
    uint64_t room = p->uid == 0 ? ((p->bounding & bnd) | inh) : (held | inh);
    return (p->permitted & ~held) == 0 && (p->inheritable & ~room) == 0;
}

/* create (exit 0 once the container waits at its gate) or run (create, start, wait,
   delete: exit with the payload's status); any miss or failure before the payload runs
   hands the call to Python. Never returns. */
void fast_create(const char *root, const char *id, const char *bundle_arg, const char *pid_file,
                 int run) {
    struct plan p;
    load_plan(root, bundle_arg, &p);
    if (p.home_lookup)
        add_home(&p);
    if (geteuid() != 0)
        miss("not root");
    if (!caps_grantable(&p))
        miss("capabilities this runtime cannot grant"); /* Python names them */
    struct made m;
    memset(&m, 0, sizeof m);
    m.dirfd = -1;
    mkdir(root, 0700);
    if (snprintf(m.dir, sizeof m.dir, "%s/%s", root, id) >= (int)sizeof m.dir)
        miss("path too long");
    if (mkdir(m.dir, 0700) != 0)
        miss("container directory: %s", strerror(errno)); /* Python: "already exists" */
    pause_for_tests("mkdir");
    m.dirfd = open(m.dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (m.dirfd < 0) {
        rmdir(m.dir);
        miss("container directory: %s", strerror(errno));
    }
    char created[64], owner[64];
    now_rfc3339(created, sizeof created);
    struct passwd *pw = getpwuid(geteuid());
    snprintf(owner, sizeof owner, "%s", pw ? pw->pw_name : "root");
    m.st = (struct cstate){.id = id, .created = created, .owner = owner, .pid = 0,
                           .creator = getpid(), .creating = 1};
    char own_state;
    if (proc_stat(getpid(), &m.st.creator_starttime, &own_state) != 0)
        m.st.creator_starttime = 0;
    if (write_state(m.dirfd, &p, &m.st) != 0)
        undo_miss(&m, "state: %s", strerror(errno));
    if (mkfifoat(m.dirfd, "exec.fifo", 0600) != 0)
        undo_miss(&m, "exec.fifo: %s", strerror(errno));
    char fifo[PATH_MAX + 16];
    snprintf(fifo, sizeof fifo, "%s/exec.fifo", m.dir);
    int gate = open(fifo, O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (gate < 0)
        undo_miss(&m, "exec.fifo: %s", strerror(errno));
    char ctldir[FAST_MAX][PATH_MAX];
    int cgfd = make_cgroups(&m, &p, id, ctldir);
    char why[PATH_MAX + 64];
    if (prepare_mountpoints(&p, why, sizeof why) != 0)
        undo_miss(&m, "%s", why);
    /* the clone; the v1 tasks fds are opened here, with the runtime's credentials, for
       the child to join its cgroups through */
    struct child_fds f;
    child_fds_none(&f);
    int errp[2], syncp[2], statusp[2], createdp[2];
    if (pipe2(errp, O_CLOEXEC) || pipe2(syncp, O_CLOEXEC) || pipe2(statusp, O_CLOEXEC) ||
        pipe2(createdp, O_CLOEXEC))
        undo_miss(&m, "pipe: %s", strerror(errno));
    for (int i = 0; i < m.st.ndirs && cgfd < 0; i++) {
        char path[PATH_MAX + 8];
        snprintf(path, sizeof path, "%s/tasks", m.st.dirs[i]);
        f.tasks[f.ntasks] = open(path, O_WRONLY | O_CLOEXEC);
        if (f.tasks[f.ntasks++] < 0)
            undo_miss(&m, "attach: %s", strerror(errno));
    }
    f.err_w = errp[1];
    f.sync_r = syncp[0];
    f.status_w = statusp[1];
    f.created_w = createdp[1];
    f.gate = gate;
    sigset_t fwd, old;
    sigemptyset(&fwd);
    int fwd_sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};
    for (size_t i = 0; i < sizeof fwd_sigs / sizeof fwd_sigs[0]; i++)
        sigaddset(&fwd, fwd_sigs[i]);
    sigprocmask(SIG_BLOCK, &fwd, &old);
    long pid = clone_container(p.clone_flags, cgfd);
    if (pid == 0) {
        if (cgfd >= 0)
            close(cgfd);
        close(errp[0]);
        close(syncp[1]);
        close(statusp[0]);
        close(createdp[0]);
        child_main(&p, &f);
    }
    sigprocmask(SIG_SETMASK, &old, NULL);
    if (pid < 0)
        undo_miss(&m, "clone: %s", strerror(errno));
    m.pid = pid;
    if (cgfd >= 0)
        close(cgfd);
    close(errp[1]);
    close(syncp[0]);
    close(statusp[1]);
    close(createdp[1]);
    for (int i = 0; i < f.ntasks; i++)
        close(f.tasks[i]);
    close(gate);
    if (write_id_maps(&p, pid, why, sizeof why) != 0)
        undo_miss(&m, "%s", why);
    if (write(syncp[1], &(char){MSG_GO}, 1) != 1)
        undo_miss(&m, "the container's process is gone");
    close(syncp[1]);
    char got[8];
    ssize_t n = read(createdp[0], got, sizeof got);
    if (n != 1 || got[0] != MSG_CREATED) {
        char msg[1024];
        ssize_t e = read(errp[0], msg, sizeof msg - 1);
        msg[e > 0 ? e : 0] = '\0';
        msg[strcspn(msg, "\n")] = '\0'; /* child_fail's one line "step<TAB>message\n" */
        char *tab = strchr(msg, '\t');
        if (tab != NULL)
            *tab = '\0';
        undo_miss(&m, "the container's process failed: %s%s%s", e > 0 ? msg : "(no message)",
                  tab != NULL ? ": " : "", tab != NULL ? tab + 1 : "");
    }
    close(createdp[0]);
    close(errp[0]);
    close(statusp[0]);
    /* created: the state as lifecycle.create writes it */
    char state;
    if (proc_stat(pid, &m.st.starttime, &state) != 0)
        m.st.starttime = 0;
    m.st.pid = pid;
    m.st.creating = 0;
    if (write_state(m.dirfd, &p, &m.st) != 0)
        undo_miss(&m, "state: %s", strerror(errno));
    if (p.has_oom) {
        char path[64], val[32];
        snprintf(path, sizeof path, "/proc/%ld/oom_score_adj", pid);
        snprintf(val, sizeof val, "%lld", (long long)p.oom);
        if (write_text(path, val) != 0)
            undo_miss(&m, "oom_score_adj: %s", strerror(errno));
    }
    if (pid_file != NULL) {
        char tmp[PATH_MAX + 8], val[32];
        snprintf(tmp, sizeof tmp, "%s.tmp", pid_file);
        int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        int len = snprintf(val, sizeof val, "%ld", pid);
        if (fd < 0 || write(fd, val, (size_t)len) != len || close(fd) != 0 || rename(tmp, pid_file) != 0)
            undo_miss(&m, "pid file %s: %s", pid_file, strerror(errno));
    }
    for (int i = 0; i < p.nnotes; i++)
        fprintf(stderr, "stockade: note: %s\n", p.notes[i]);
    if (!run)
        _exit(0);
    /* run: forward signals, start, wait, delete (lifecycle.run). The handlers come
       first: once started, the container may already be answered by a signal to us. */
    g_forward_pid = (int)pid;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = forward_signal;
    sa.sa_flags = SA_RESTART;
    for (size_t i = 0; i < sizeof fwd_sigs / sizeof fwd_sigs[0]; i++)
        sigaction(fwd_sigs[i], &sa, NULL);
    int fd = openat(m.dirfd, "exec.fifo", O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    static const char go[1 + MSG_START_LENGTH_BYTES] = {MSG_START}; /* no state */
    if (fd < 0 || write(fd, go, sizeof go) != (ssize_t)sizeof go)
        undo_miss(&m, "start: %s", strerror(errno));
    close(fd);
    unlinkat(m.dirfd, "exec.fifo", 0);
    int status = 0;
    while (waitpid((pid_t)pid, &status, 0) < 0 && errno == EINTR)
        ;
    m.pid = 0;
    undo(&m); /* delete --force of a stopped container: cgroups, then the state */
    _exit(WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status));
}
