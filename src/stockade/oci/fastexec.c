/* The front end's create/run: execute a plan that `stockade oci` compiled earlier.
 *
 * Included by frontend.c. `stockade oci create|run` (Python) translates config.json into
 * a runner plan; when the front end handed it the call, it also stores that plan, for
 * configurations this file can carry out, in `<root>/.fast/<key>` (oci/fastplan.py
 * writes it). The next create/run of the same bundle with the same config.json (byte for
 * byte, every file the translation read unchanged) is done here, without an interpreter:
 * the same steps in the same order as runner/launcher.py, child.py and rootfs.py.
 *
 * Any miss, any unexpected input and any failure before the container's process was
 * started undoes what was made (process, cgroups, state directory) and falls back to
 * the Python runtime, which does everything anew and reports errors as usual; so both
 * paths differ only in speed. STOCKADE_FAST=require makes a miss or a failure print why
 * and exit 125 instead (the tests use it to prove which path ran); STOCKADE_FAST=off
 * never uses a stored plan.
 */
#include <grp.h>
#include <sched.h>
#include <pwd.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/utsname.h>
#include <net/if.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stdint.h>
#include <stdarg.h>
#include <limits.h>

#define FAST_MAGIC "STKFAST1"
#define FAST_MAX 64 /* every list in a plan (more: not stored by fastplan.py) */

/* <linux/mount.h> and <linux/openat2.h> clash with glibc's headers: the few constants */
#define X_OPEN_TREE_CLONE 1
#define X_AT_RECURSIVE 0x8000
#define X_MOVE_MOUNT_F_EMPTY_PATH 0x4
#define X_MOVE_MOUNT_T_EMPTY_PATH 0x40
#define X_FSOPEN_CLOEXEC 1
#define X_FSMOUNT_CLOEXEC 1
#define X_FSCONFIG_SET_FLAG 0
#define X_FSCONFIG_SET_STRING 1
#define X_FSCONFIG_CMD_CREATE 6
#define X_ATTR_RDONLY 0x1
#define X_ATTR_NOSUID 0x2
#define X_ATTR_NODEV 0x4
#define X_ATTR_NOEXEC 0x8
#define X_RESOLVE_NO_MAGICLINKS 0x02
#define X_RESOLVE_NO_SYMLINKS 0x04
#define X_RESOLVE_BENEATH 0x08
#define X_RESOLVE_IN_ROOT 0x10
#define X_CLOSE_RANGE_CLOEXEC 4
#define SAFE (X_ATTR_NOSUID | X_ATTR_NODEV)
#define CGROUP_SUPER_MAGIC 0x27e0eb
#define CGROUP2_SUPER_MAGIC 0x63677270
#define X_CLONE_INTO_CGROUP 0x200000000ULL
#define EXIT_INTERNAL 122

struct x_mount_attr { uint64_t attr_set, attr_clr, propagation, userns_fd; };
struct x_open_how { uint64_t flags, mode, resolve; };

enum mount_kind { K_PROC = 1, K_SYSFS, K_TMPFS, K_DEV, K_FS, K_BIND, K_WRITABLE, K_READONLY, K_MASK };

struct kv { const char *key, *value; }; /* value NULL: a flag option */

struct mop {
    uint64_t kind, readonly, optional, attrs;
    const char *dst, *src, *fstype;
    const char *source;   /* fresh filesystems: mountinfo's source ("" : the type's name) */
    uint64_t propagation; /* MS_SHARED/SLAVE/PRIVATE/UNBINDABLE (| MS_REC), 0: unchanged */
    int ndata;
    struct kv data[FAST_MAX];
};

struct cgctl { const char *name, *mount; uint64_t absolute; };
struct cgwrite { const char *ctrl, *file, *value; };

struct plan {
    const char *bundle; /* its real path, as the state records it */
    uint64_t clone_flags, cgroup_ns, loopback;
    const char *hostname; /* "" for none */
    int nsysctl;
    struct kv sysctl[FAST_MAX];
    uint64_t cg_mode; /* 1: v1, a directory per controller; 2: v2, one directory */
    int nctl;
    struct cgctl ctl[FAST_MAX];
    const char *cg_leaf; /* "" for stockade/<id> */
    int ncgw;
    struct cgwrite cgw[FAST_MAX];
    int nenable;
    const char *enable[FAST_MAX]; /* v2: controllers to enable in the parents */
    const unsigned char *devprog; /* v2: the device rules' eBPF program, or empty */
    size_t devprog_len;
    uint64_t has_oom;
    int64_t oom;
    const char *rootfs;
    uint64_t root_propagation, root_readonly; /* after pivot_root; 0: rslave as made */
    int nmounts;
    struct mop *mounts;
    uint64_t userns, maps_root;
    const char *uid_map, *gid_map;
    uint64_t uid, gid, setgroups;
    int ngroups;
    gid_t groups[FAST_MAX];
    uint64_t bounding, permitted, effective, inheritable, last_cap_plan;
    int nambient;
    uint64_t ambient[FAST_MAX];
    int nrlimits;
    uint64_t rlimits[FAST_MAX][3];
    uint64_t nnp, seccomp_flags;
    const unsigned char *bpf[2];
    size_t bpf_len[2];
    const char *cwd;
    uint64_t has_umask, umask;
    int nargv, nenv;
    char *argv[FAST_MAX + 1];
    char *env[FAST_MAX * 4 + 2]; /* + HOME, + NULL */
    uint64_t home_lookup, home_uid;
    const char *path_var, *st_rootfs;
    int nann;
    struct kv ann[FAST_MAX];
    int nnotes;
    const char *notes[FAST_MAX];
};

static const char *DEV_NODES[] = {"null", "zero", "full", "random", "urandom", "tty"};
#define NDEV ((int)(sizeof DEV_NODES / sizeof DEV_NODES[0]))

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

/* --- reading a stored plan ------------------------------------------------------- */

struct rd { const unsigned char *p, *end; int bad; };

static uint64_t r_u64(struct rd *r) {
    if (r->bad || r->end - r->p < 8) {
        r->bad = 1;
        return 0;
    }
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | r->p[i];
    r->p += 8;
    return v;
}

/* u32 length, the bytes and a NUL (so strings can be used in place). */
static const char *r_bytes(struct rd *r, size_t *len) {
    if (r->bad || r->end - r->p < 4) {
        r->bad = 1;
        return "";
    }
    size_t n = (size_t)r->p[0] | (size_t)r->p[1] << 8 | (size_t)r->p[2] << 16 | (size_t)r->p[3] << 24;
    r->p += 4;
    if ((size_t)(r->end - r->p) < n + 1 || r->p[n] != '\0') {
        r->bad = 1;
        return "";
    }
    const char *s = (const char *)r->p;
    r->p += n + 1;
    if (len != NULL)
        *len = n;
    return s;
}

static const char *r_str(struct rd *r) {
    size_t n = 0;
    const char *s = r_bytes(r, &n);
    if (strlen(s) != n)
        r->bad = 1; /* an embedded NUL */
    return s;
}

static int r_count(struct rd *r, int max) {
    uint64_t n = r_u64(r);
    if (n > (uint64_t)max)
        r->bad = 1;
    return r->bad ? 0 : (int)n;
}

/* The dependency list: paths whose symlinks the translation resolved, as they were. */
static int deps_unchanged(struct rd *r) {
    int n = r_count(r, FAST_MAX);
    for (int i = 0; i < n; i++) {
        const char *path = r_str(r);
        const char *want = r_str(r);
        char got[PATH_MAX];
        if (r->bad || realpath(path, got) == NULL || strcmp(got, want) != 0)
            return 0;
    }
    return !r->bad;
}

static int read_plan(struct rd *r, struct plan *p) {
    memset(p, 0, sizeof *p);
    p->clone_flags = r_u64(r);
    p->cgroup_ns = r_u64(r);
    p->loopback = r_u64(r);
    p->hostname = r_str(r);
    p->nsysctl = r_count(r, FAST_MAX);
    for (int i = 0; i < p->nsysctl; i++) {
        p->sysctl[i].key = r_str(r);
        p->sysctl[i].value = r_str(r);
    }
    p->cg_mode = r_u64(r);
    p->nctl = r_count(r, FAST_MAX);
    for (int i = 0; i < p->nctl; i++) {
        p->ctl[i].name = r_str(r);
        p->ctl[i].mount = r_str(r);
        p->ctl[i].absolute = r_u64(r);
    }
    p->cg_leaf = r_str(r);
    p->ncgw = r_count(r, FAST_MAX);
    for (int i = 0; i < p->ncgw; i++) {
        p->cgw[i].ctrl = r_str(r);
        p->cgw[i].file = r_str(r);
        p->cgw[i].value = r_str(r);
    }
    p->nenable = r_count(r, FAST_MAX);
    for (int i = 0; i < p->nenable; i++)
        p->enable[i] = r_str(r);
    p->devprog = (const unsigned char *)r_bytes(r, &p->devprog_len);
    p->has_oom = r_u64(r);
    p->oom = (int64_t)r_u64(r);
    p->rootfs = r_str(r);
    p->root_propagation = r_u64(r);
    p->root_readonly = r_u64(r);
    p->nmounts = r_count(r, FAST_MAX);
    p->mounts = calloc((size_t)p->nmounts + 1, sizeof *p->mounts);
    if (p->mounts == NULL)
        return 0;
    for (int i = 0; i < p->nmounts; i++) {
        struct mop *m = &p->mounts[i];
        m->kind = r_u64(r);
        m->dst = r_str(r);
        m->src = r_str(r);
        m->readonly = r_u64(r);
        m->optional = r_u64(r);
        m->fstype = r_str(r);
        m->attrs = r_u64(r);
        m->source = r_str(r);
        m->propagation = r_u64(r);
        m->ndata = r_count(r, FAST_MAX);
        for (int j = 0; j < m->ndata; j++) {
            m->data[j].key = r_str(r);
            uint64_t has = r_u64(r);
            const char *v = r_str(r);
            m->data[j].value = has ? v : NULL;
        }
        if (m->kind < K_PROC || m->kind > K_MASK)
            r->bad = 1;
    }
    p->userns = r_u64(r);
    p->uid_map = r_str(r);
    p->gid_map = r_str(r);
    p->maps_root = r_u64(r);
    p->uid = r_u64(r);
    p->gid = r_u64(r);
    p->setgroups = r_u64(r);
    p->ngroups = r_count(r, FAST_MAX);
    for (int i = 0; i < p->ngroups; i++)
        p->groups[i] = (gid_t)r_u64(r);
    p->bounding = r_u64(r);
    p->permitted = r_u64(r);
    p->effective = r_u64(r);
    p->inheritable = r_u64(r);
    p->last_cap_plan = r_u64(r);
    p->nambient = r_count(r, FAST_MAX);
    for (int i = 0; i < p->nambient; i++)
        p->ambient[i] = r_u64(r);
    p->nrlimits = r_count(r, FAST_MAX);
    for (int i = 0; i < p->nrlimits; i++)
        for (int j = 0; j < 3; j++)
            p->rlimits[i][j] = r_u64(r);
    p->nnp = r_u64(r);
    p->seccomp_flags = r_u64(r);
    for (int i = 0; i < 2; i++)
        p->bpf[i] = (const unsigned char *)r_bytes(r, &p->bpf_len[i]);
    p->cwd = r_str(r);
    p->has_umask = r_u64(r);
    p->umask = r_u64(r);
    p->nargv = r_count(r, FAST_MAX);
    for (int i = 0; i < p->nargv; i++)
        p->argv[i] = (char *)r_str(r);
    p->nenv = r_count(r, FAST_MAX * 4);
    for (int i = 0; i < p->nenv; i++)
        p->env[i] = (char *)r_str(r);
    p->home_lookup = r_u64(r);
    p->home_uid = r_u64(r);
    p->path_var = r_str(r);
    p->st_rootfs = r_str(r);
    p->nann = r_count(r, FAST_MAX);
    for (int i = 0; i < p->nann; i++) {
        p->ann[i].key = r_str(r);
        p->ann[i].value = r_str(r);
    }
    p->nnotes = r_count(r, FAST_MAX);
    for (int i = 0; i < p->nnotes; i++)
        p->notes[i] = r_str(r);
    if (r->p != r->end || p->nargv == 0 || p->bpf_len[0] % 8 || p->bpf_len[1] % 8 ||
        p->devprog_len % 8 || (p->cg_mode != 1 && p->cg_mode != 2) ||
        (p->cg_mode == 2 && p->nctl != 1))
        r->bad = 1;
    return !r->bad;
}

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
    struct rd r = {data, data + len, 0};
    if (len < 8 || memcmp(data, FAST_MAGIC, 8) != 0)
        miss("stored plan: bad magic");
    r.p += 8;
    const char *stamp = r_str(&r);
    if (r.bad || strcmp(stamp, STOCKADE_STAMP) != 0)
        miss("stored plan from another build");
    const char *b = r_str(&r);
    size_t stored_len = 0;
    const unsigned char *stored = (const unsigned char *)r_bytes(&r, &stored_len);
    uint64_t last_cap = r_u64(&r), euid = r_u64(&r);
    const char *test_v2 = r_str(&r), *env_v2 = getenv("STOCKADE_TEST_CGROUP_V2");
    const char *release = r_str(&r);
    struct utsname uts;
    if (r.bad || strcmp(b, bundle) != 0 || stored_len != clen || memcmp(stored, config, clen) != 0)
        miss("stored plan is for another bundle or config.json");
    if ((long)last_cap != read_long_file("/proc/sys/kernel/cap_last_cap") || euid != geteuid() ||
        strcmp(test_v2, env_v2 ? env_v2 : "") != 0 || uname(&uts) != 0 ||
        strcmp(release, uts.release) != 0)
        miss("host facts changed since the plan was stored");
    if (!deps_unchanged(&r))
        miss("a file the plan was made from changed");
    free(config);
    if (!read_plan(&r, p))
        miss("stored plan is malformed");
    p->bundle = b;
}

/* --- the state files (read by stockade.oci.state: marshal) ------------------------ */

struct buf { unsigned char *d; size_t n, cap; int bad; };

static void b_put(struct buf *b, const void *data, size_t n) {
    if (b->bad)
        return;
    if (b->n + n > b->cap) {
        size_t cap = (b->cap + n) * 2;
        unsigned char *d = realloc(b->d, cap);
        if (d == NULL) {
            b->bad = 1;
            return;
        }
        b->d = d;
        b->cap = cap;
    }
    memcpy(b->d + b->n, data, n);
    b->n += n;
}

static void m_u32(struct buf *b, uint32_t v) {
    unsigned char x[4] = {v & 0xff, v >> 8 & 0xff, v >> 16 & 0xff, v >> 24 & 0xff};
    b_put(b, x, 4);
}

static void m_str(struct buf *b, const char *s) {
    b_put(b, "u", 1);
    m_u32(b, (uint32_t)strlen(s));
    b_put(b, s, strlen(s));
}

static void m_int(struct buf *b, long long v) {
    if (v < INT32_MIN || v > INT32_MAX) { /* marshal's long: 15-bit digits */
        unsigned long long a = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
        int32_t nd = 0;
        unsigned short dg[8];
        while (a) {
            dg[nd++] = a & 0x7fff;
            a >>= 15;
        }
        b_put(b, "l", 1);
        m_u32(b, (uint32_t)(v < 0 ? -nd : nd));
        for (int i = 0; i < nd; i++) {
            unsigned char x[2] = {dg[i] & 0xff, dg[i] >> 8};
            b_put(b, x, 2);
        }
        return;
    }
    b_put(b, "i", 1);
    m_u32(b, (uint32_t)(int32_t)v);
}

static void m_bool(struct buf *b, int v) { b_put(b, v ? "T" : "F", 1); }

struct cstate {
    const char *id, *created, *owner;
    long pid, creator;
    unsigned long long starttime;
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

/* As stockade.oci.lifecycle.create's `data` dict, marshalled. */
static int write_state(int dirfd, const struct plan *p, const struct cstate *s) {
    struct buf b = {0};
    b_put(&b, "{", 1);
    m_str(&b, "id"); m_str(&b, s->id);
    m_str(&b, "pid"); m_int(&b, s->pid);
    m_str(&b, "creator"); m_int(&b, s->creator);
    m_str(&b, "creating"); m_bool(&b, s->creating);
    m_str(&b, "bundle"); m_str(&b, p->bundle);
    m_str(&b, "rootfs"); m_str(&b, p->st_rootfs);
    m_str(&b, "created"); m_str(&b, s->created);
    m_str(&b, "owner"); m_str(&b, s->owner);
    m_str(&b, "annotations");
    b_put(&b, "{", 1);
    for (int i = 0; i < p->nann; i++) {
        m_str(&b, p->ann[i].key);
        m_str(&b, p->ann[i].value);
    }
    b_put(&b, "0", 1);
    m_str(&b, "cgroup_dirs");
    b_put(&b, "[", 1);
    m_u32(&b, (uint32_t)s->ndirs);
    for (int i = 0; i < s->ndirs; i++)
        m_str(&b, s->dirs[i]);
    m_str(&b, "cgroup_pending");
    b_put(&b, "[", 1);
    m_u32(&b, (uint32_t)s->npending);
    for (int i = 0; i < s->npending; i++)
        m_str(&b, s->pending[i]);
    m_str(&b, "start_hooks"); m_bool(&b, 0);
    m_str(&b, "hooks");
    b_put(&b, "{", 1);
    m_str(&b, "poststart"); b_put(&b, "[", 1); m_u32(&b, 0);
    m_str(&b, "poststop"); b_put(&b, "[", 1); m_u32(&b, 0);
    b_put(&b, "0", 1);
    if (!s->creating) {
        m_str(&b, "starttime");
        m_int(&b, (long long)s->starttime);
    }
    b_put(&b, "0", 1);
    int rc = b.bad ? -1 : write_atomic(dirfd, "state", b.d, b.n);
    free(b.d);
    return rc;
}

/* A JSON string as Python's json.dumps writes it (ensure_ascii): 0, or -1 for a byte
   above 0x7f (its \\u escape needs UTF-8 decoding: no `spec` file then, Python answers). */
static int j_str(struct buf *b, const char *s) {
    b_put(b, "\"", 1);
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        char esc[8];
        if (*c >= 0x80)
            return -1;
        if (*c == '"' || *c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)*c;
            b_put(b, esc, 2);
        } else if (*c < 0x20) {
            const char *named = strchr("\b\f\n\r\t", *c);
            int n = named != NULL ? snprintf(esc, sizeof esc, "\\%c", "bfnrt"[named - "\b\f\n\r\t"])
                                  : snprintf(esc, sizeof esc, "\\u%04x", *c);
            b_put(b, esc, (size_t)n);
        } else {
            b_put(b, c, 1);
        }
    }
    b_put(b, "\"", 1);
    return 0;
}

/* state.write_fast's `spec`: `state`'s JSON (indent 2) from its "bundle" line on. */
static int write_spec_tail(int dirfd, const struct plan *p, const struct cstate *s) {
    struct buf b = {0};
    int bad = 0;
    const char *keys[] = {"bundle", "rootfs", "created", "owner"};
    const char *values[] = {p->bundle, p->st_rootfs, s->created, s->owner};
    for (int i = 0; i < 4; i++) {
        b_put(&b, "  \"", 3);
        b_put(&b, keys[i], strlen(keys[i]));
        b_put(&b, "\": ", 3);
        bad |= j_str(&b, values[i]);
        if (i < 3 || p->nann > 0)
            b_put(&b, ",", 1);
        b_put(&b, "\n", 1);
    }
    if (p->nann > 0) {
        static const char ann[] = "  \"annotations\": {\n";
        b_put(&b, ann, sizeof ann - 1);
        for (int i = 0; i < p->nann; i++) {
            b_put(&b, "    ", 4);
            bad |= j_str(&b, p->ann[i].key);
            b_put(&b, ": ", 2);
            bad |= j_str(&b, p->ann[i].value);
            b_put(&b, i + 1 < p->nann ? ",\n" : "\n", i + 1 < p->nann ? 2 : 1);
        }
        b_put(&b, "  }\n", 4);
    }
    b_put(&b, "}\n", 2);
    int rc = b.bad || bad ? -1 : write_atomic(dirfd, "spec", b.d, b.n);
    free(b.d);
    return rc;
}

static int write_fast(int dirfd, const struct plan *p, const struct cstate *s) {
    write_spec_tail(dirfd, p, s); /* none: `state` goes to Python */
    struct buf b = {0};
    char line[PATH_MAX + 32];
    int n = snprintf(line, sizeof line, "pid=%ld\nstarttime=%llu\nhooks=0\n", s->pid, s->starttime);
    b_put(&b, line, (size_t)n);
    for (int i = 0; i < s->ndirs; i++) {
        n = snprintf(line, sizeof line, "cgroup=%s\n", s->dirs[i]);
        b_put(&b, line, (size_t)n);
    }
    int rc = b.bad ? -1 : write_atomic(dirfd, "fast", b.d, b.n);
    free(b.d);
    return rc;
}

/* --- the container's process (runner/child.py, no init, no user namespace) ------- */

static int g_err_w = -1;

/* runner.codes.EXIT_CODES */
static int step_code(const char *step) {
    static const struct { const char *step; int code; } codes[] = {
        {"cgroups", 111}, {"namespaces", 112}, {"idmap", 113}, {"rootfs", 114},
        {"rlimits", 116}, {"capabilities", 117}, {"no_new_privs", 118}, {"hygiene", 120},
        {"seccomp", 121}, {"exec-permission", 126}, {"exec", 127},
    };
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
        if (strcmp(codes[i].step, step) == 0)
            return codes[i].code;
    return EXIT_INTERNAL;
}

static void __attribute__((noreturn, format(printf, 2, 3))) child_fail(const char *step, const char *fmt, ...) {
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
    _exit(step_code(step));
}

#define CHECK(step, expr) do { if ((expr) < 0) child_fail(step, "%s: %s", #expr, strerror(errno)); } while (0)

static long x_open_tree(int dfd, const char *path, unsigned flags) {
    return syscall(SYS_open_tree, dfd, path, flags);
}

static int x_setattr(int fd, unsigned flags, uint64_t set, uint64_t clr) {
    struct x_mount_attr a = {set, clr, 0, 0};
    return (int)syscall(SYS_mount_setattr, fd, "", flags, &a, sizeof a);
}

/* rootfs._propagate: the mount's OCI propagation option, on its detached tree */
static int x_propagate(int tree, uint64_t propagation) {
    if (propagation == 0)
        return 0;
    struct x_mount_attr a = {0, 0, propagation & ~(uint64_t)MS_REC, 0};
    unsigned flags = AT_EMPTY_PATH | ((propagation & MS_REC) ? X_AT_RECURSIVE : 0);
    return (int)syscall(SYS_mount_setattr, tree, "", flags, &a, sizeof a);
}

static int x_attach(int tree, int target) {
    int rc = (int)syscall(SYS_move_mount, tree, "", target, "",
                          X_MOVE_MOUNT_F_EMPTY_PATH | X_MOVE_MOUNT_T_EMPTY_PATH);
    int e = errno;
    close(tree);
    errno = e;
    return rc;
}

static int x_openat2(int dfd, const char *path, uint64_t flags, uint64_t resolve) {
    struct x_open_how how = {flags | O_CLOEXEC, 0, resolve};
    return (int)syscall(SYS_openat2, dfd, path, &how, sizeof how);
}

/* rootfs._linux.fsmount_new: source is what mountinfo shows ("" or NULL: the type's name) */
static int fsmount_new(const char *fstype, const char *source, const struct kv *opts, int nopts,
                       uint64_t attrs) {
    int fs = (int)syscall(SYS_fsopen, fstype, X_FSOPEN_CLOEXEC);
    if (fs < 0)
        return -1;
    int rc = (int)syscall(SYS_fsconfig, fs, X_FSCONFIG_SET_STRING, "source",
                          source != NULL && source[0] ? source : fstype, 0);
    for (int i = 0; i < nopts && rc == 0; i++) {
        if (opts[i].value == NULL)
            rc = (int)syscall(SYS_fsconfig, fs, X_FSCONFIG_SET_FLAG, opts[i].key, NULL, 0);
        else
            rc = (int)syscall(SYS_fsconfig, fs, X_FSCONFIG_SET_STRING, opts[i].key, opts[i].value, 0);
    }
    if (rc == 0)
        rc = (int)syscall(SYS_fsconfig, fs, X_FSCONFIG_CMD_CREATE, NULL, NULL, 0);
    int m = rc == 0 ? (int)syscall(SYS_fsmount, fs, X_FSMOUNT_CLOEXEC, attrs) : -1;
    int e = errno;
    close(fs);
    errno = e;
    return m;
}

/* rootfs.resolve: O_PATH fd of path inside the root; create: 0 none, 1 dir, 2 file.
   Returns -1 with errno ENOENT for a missing path when create is 0. */
static int resolve(int root, const char *path, int create) {
    while (*path == '/')
        path++;
    const char *rel = *path ? path : ".";
    int fd = x_openat2(root, rel, O_PATH, X_RESOLVE_IN_ROOT | X_RESOLVE_NO_MAGICLINKS);
    if (fd >= 0 || errno != ENOENT || create == 0)
        return fd;
    char parent[PATH_MAX];
    const char *slash = strrchr(rel, '/');
    const char *name = slash ? slash + 1 : rel;
    int pfd;
    if (slash != NULL) {
        size_t n = (size_t)(slash - rel);
        if (n >= sizeof parent)
            return -1;
        memcpy(parent, rel, n);
        parent[n] = '\0';
        pfd = resolve(root, parent, 1);
    } else {
        pfd = dup(root);
    }
    if (pfd < 0)
        return -1;
    int rc = create == 1 ? mkdirat(pfd, name, 0755)
                         : openat(pfd, name, O_CREAT | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (create == 2 && rc >= 0)
        close(rc);
    int e = errno;
    close(pfd);
    if (rc < 0 && e != EEXIST) {
        errno = e;
        return -1;
    }
    return x_openat2(root, rel, O_PATH, X_RESOLVE_IN_ROOT | X_RESOLVE_NO_MAGICLINKS);
}

static int is_dir_fd(int fd) {
    struct stat st;
    return fstat(fd, &st) == 0 && S_ISDIR(st.st_mode);
}

static int target(int root, const struct mop *m, int kind) {
    int fd = resolve(root, m->dst, m->optional ? 0 : kind);
    if (fd < 0 && !m->optional)
        child_fail("rootfs", "mountpoint %s: %s", m->dst, strerror(errno));
    if (fd < 0 && errno != ENOENT)
        child_fail("rootfs", "mountpoint %s: %s", m->dst, strerror(errno));
    return fd;
}

/* rootfs.open_sources' trees: one per mount (by its index), and the /dev nodes' */
struct trees { int fd[FAST_MAX + 1]; int dev[NDEV]; };

static void open_sources(const struct plan *p, struct trees *t, int *rootfd) {
    /* A clone of a shared mount would stay in its host peer group: slave first. */
    CHECK("rootfs", mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL));
    for (int i = 0; i <= FAST_MAX; i++)
        t->fd[i] = -1;
    *rootfd = (int)x_open_tree(AT_FDCWD, p->rootfs, X_OPEN_TREE_CLONE | O_CLOEXEC | X_AT_RECURSIVE);
    if (*rootfd < 0)
        child_fail("rootfs", "cannot open a source tree: %s (%s)", strerror(errno), p->rootfs);
    CHECK("rootfs", x_setattr(*rootfd, AT_EMPTY_PATH | X_AT_RECURSIVE, SAFE, 0));
    for (int i = 0; i < p->nmounts; i++) {
        const struct mop *m = &p->mounts[i];
        if ((m->kind == K_BIND || m->kind == K_WRITABLE) && m->src[0]) {
            t->fd[i] = (int)x_open_tree(AT_FDCWD, m->src, X_OPEN_TREE_CLONE | O_CLOEXEC | X_AT_RECURSIVE);
            if (t->fd[i] < 0)
                child_fail("rootfs", "cannot open a source tree: %s (%s)", strerror(errno), m->src);
        }
    }
    for (int i = 0; i < NDEV; i++) {
        char path[64];
        snprintf(path, sizeof path, "/dev/%s", DEV_NODES[i]);
        t->dev[i] = (int)x_open_tree(AT_FDCWD, path, X_OPEN_TREE_CLONE | O_CLOEXEC);
        if (t->dev[i] < 0)
            child_fail("rootfs", "cannot open a source tree: %s (%s)", strerror(errno), path);
    }
}

static int fresh(int root, const struct mop *m, const char *fstype, const struct kv *opts,
                 int nopts, uint64_t attrs) {
    int tfd = target(root, m, 1);
    int tree = fsmount_new(fstype, m->source, opts, nopts, attrs);
    if (tree < 0)
        child_fail("rootfs", "%s on %s: %s", fstype, m->dst, strerror(errno));
    CHECK("rootfs", x_propagate(tree, m->propagation));
    int keep = dup(tree);
    CHECK("rootfs", keep);
    if (x_attach(tree, tfd) != 0)
        child_fail("rootfs", "attach %s on %s: %s", fstype, m->dst, strerror(errno));
    close(tfd);
    return keep;
}

static int beneath(int dirfd, const char *name) {
    int fd = x_openat2(dirfd, name, O_PATH, X_RESOLVE_BENEATH | X_RESOLVE_NO_SYMLINKS);
    if (fd < 0)
        child_fail("rootfs", "/dev/%s: %s", name, strerror(errno));
    return fd;
}

static void build_dev(int root, const struct mop *m, struct trees *t) {
    static const struct kv devopts[] = {{"mode", "0755"}, {"size", "65536"}};
    int dev = fresh(root, m, "tmpfs", devopts, 2, X_ATTR_NOSUID | X_ATTR_NOEXEC);
    for (int i = 0; i < NDEV; i++) {
        int fd = openat(dev, DEV_NODES[i], O_CREAT | O_WRONLY | O_CLOEXEC, 0666);
        CHECK("rootfs", fd);
        close(fd);
        int tg = beneath(dev, DEV_NODES[i]);
        CHECK("rootfs", x_setattr(t->dev[i], AT_EMPTY_PATH, X_ATTR_NOSUID | X_ATTR_NOEXEC, 0));
        CHECK("rootfs", x_attach(t->dev[i], tg));
        t->dev[i] = -1;
        close(tg);
    }
    CHECK("rootfs", mkdirat(dev, "pts", 0755));
    CHECK("rootfs", mkdirat(dev, "shm", 01777));
    CHECK("rootfs", mkdirat(dev, "mqueue", 0755));
    static const struct kv ptsopts[] = {{"newinstance", NULL}, {"ptmxmode", "0666"}, {"mode", "0620"}};
    int pts = beneath(dev, "pts");
    int tree = fsmount_new("devpts", NULL, ptsopts, 3, X_ATTR_NOSUID | X_ATTR_NOEXEC);
    CHECK("rootfs", tree);
    CHECK("rootfs", x_attach(tree, pts));
    close(pts);
    static const struct kv shmopts[] = {{"mode", "1777"}};
    int shm = beneath(dev, "shm");
    tree = fsmount_new("tmpfs", "shm", shmopts, 1, SAFE | X_ATTR_NOEXEC);
    CHECK("rootfs", tree);
    CHECK("rootfs", x_attach(tree, shm));
    close(shm);
    static const char *links[][2] = {{"ptmx", "pts/ptmx"}, {"fd", "/proc/self/fd"},
        {"stdin", "/proc/self/fd/0"}, {"stdout", "/proc/self/fd/1"}, {"stderr", "/proc/self/fd/2"}};
    for (int i = 0; i < 5; i++)
        CHECK("rootfs", symlinkat(links[i][1], dev, links[i][0]));
    CHECK("rootfs", x_setattr(dev, AT_EMPTY_PATH, X_ATTR_RDONLY, 0));
    close(dev);
}

static void build_mask(int root, const struct mop *m, int *empty) {
    int tfd = target(root, m, 1);
    if (tfd < 0)
        return;
    int tree;
    if (is_dir_fd(tfd)) {
        if (*empty < 0) {
            static const struct kv opts[] = {{"mode", "0555"}, {"size", "4096"}};
            tree = fsmount_new("tmpfs", NULL, opts, 2, SAFE | X_ATTR_NOEXEC | X_ATTR_RDONLY);
            CHECK("rootfs", tree);
            *empty = dup(tree);
        } else {
            tree = (int)x_open_tree(*empty, "", X_OPEN_TREE_CLONE | O_CLOEXEC | AT_EMPTY_PATH);
        }
    } else {
        int null = resolve(root, "/dev/null", 0);
        if (null < 0)
            child_fail("rootfs", "/dev/null is missing in the new root");
        tree = (int)x_open_tree(null, "", X_OPEN_TREE_CLONE | O_CLOEXEC | AT_EMPTY_PATH);
        close(null);
    }
    CHECK("rootfs", tree);
    CHECK("rootfs", x_attach(tree, tfd));
    close(tfd);
}

static void rebind(int root, const struct mop *m, uint64_t set, uint64_t clr, int kind) {
    int tfd = target(root, m, kind);
    if (tfd < 0)
        return;
    int tree = (int)x_open_tree(tfd, "", X_OPEN_TREE_CLONE | O_CLOEXEC | AT_EMPTY_PATH | X_AT_RECURSIVE);
    CHECK("rootfs", tree);
    CHECK("rootfs", x_setattr(tree, AT_EMPTY_PATH | X_AT_RECURSIVE, set, clr));
    CHECK("rootfs", x_attach(tree, tfd));
    close(tfd);
}

/* rootfs.build: attach the new root at /tmp, mount into it, pivot, detach the old root. */
static void build_root(const struct plan *p, struct trees *t, int roottree) {
    int staging = open("/tmp", O_PATH | O_DIRECTORY | O_CLOEXEC);
    CHECK("rootfs", staging);
    CHECK("rootfs", x_attach(roottree, staging));
    close(staging);
    int root = open("/tmp", O_PATH | O_DIRECTORY | O_CLOEXEC);
    CHECK("rootfs", root);
    if (p->root_readonly)
        CHECK("rootfs", x_setattr(root, AT_EMPTY_PATH | X_AT_RECURSIVE, X_ATTR_RDONLY, 0));
    int empty = -1;
    for (int i = 0; i < p->nmounts; i++) {
        const struct mop *m = &p->mounts[i];
        switch (m->kind) {
        case K_PROC:
            close(fresh(root, m, "proc", NULL, 0, SAFE | X_ATTR_NOEXEC));
            break;
        case K_SYSFS:
            close(fresh(root, m, "sysfs", NULL, 0, SAFE | X_ATTR_NOEXEC | X_ATTR_RDONLY));
            break;
        case K_TMPFS: {
            static const struct kv o[] = {{"mode", "1777"}};
            close(fresh(root, m, "tmpfs", o, 1, SAFE));
            break;
        }
        case K_DEV:
            build_dev(root, m, t);
            break;
        case K_FS:
            close(fresh(root, m, m->fstype, m->data, m->ndata, SAFE | m->attrs));
            break;
        case K_WRITABLE:
            if (!m->src[0]) {
                rebind(root, m, SAFE, X_ATTR_RDONLY, 1);
                break;
            }
            __attribute__((fallthrough)); /* a writable bind of a host path */
        case K_BIND: {
            int tree = t->fd[i];
            t->fd[i] = -1;
            if (tree < 0)
                child_fail("rootfs", "no source tree for %s", m->src);
            CHECK("rootfs", x_setattr(tree, AT_EMPTY_PATH | X_AT_RECURSIVE,
                                      SAFE | (m->readonly ? X_ATTR_RDONLY : 0),
                                      m->readonly ? 0 : X_ATTR_RDONLY));
            CHECK("rootfs", x_propagate(tree, m->propagation));
            int tfd = target(root, m, is_dir_fd(tree) ? 1 : 2);
            CHECK("rootfs", x_attach(tree, tfd));
            close(tfd);
            break;
        }
        case K_READONLY:
            rebind(root, m, SAFE | X_ATTR_RDONLY, 0, 1);
            break;
        case K_MASK:
            build_mask(root, m, &empty);
            break;
        }
    }
    if (empty >= 0)
        close(empty);
    CHECK("rootfs", fchdir(root));
    close(root);
    /* rslave on the old root's tree only, through an fd of it ("." is the new root) */
    int old_root = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
    CHECK("rootfs", old_root);
    CHECK("rootfs", (int)syscall(SYS_pivot_root, ".", "."));
    CHECK("rootfs", fchdir(old_root));
    CHECK("rootfs", mount(NULL, ".", NULL, MS_REC | MS_SLAVE, NULL));
    CHECK("rootfs", umount2(".", MNT_DETACH));
    close(old_root);
    CHECK("rootfs", chdir("/"));
    if (p->root_propagation) /* OCI rootfsPropagation, on the new root after pivot_root */
        CHECK("rootfs", mount(NULL, "/", NULL, p->root_propagation, NULL));
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

struct child_fds { int err_w, sync_r, status_w, created_w, gate; int tasks[FAST_MAX]; int ntasks; };

static void keep_deathsig(int status_w) {
    CHECK("idmap", prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0));
    struct pollfd pfd = {status_w, POLLOUT, 0};
    if (poll(&pfd, 1, 0) > 0 && (pfd.revents & POLLERR))
        _exit(EXIT_INTERNAL); /* the runtime is gone: never run unsupervised */
}

static void __attribute__((noreturn)) child_main(const struct plan *p, struct child_fds *f) {
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
    if (read(f->sync_r, &g, 1) != 1 || g != 'g')
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
    if (p->hostname[0])
        CHECK("namespaces", sethostname(p->hostname, strlen(p->hostname)));
    for (int i = 0; i < p->nsysctl; i++) {
        char path[PATH_MAX];
        snprintf(path, sizeof path, "/proc/sys/%s", p->sysctl[i].key);
        for (char *c = path + 10; *c; c++)
            if (*c == '.')
                *c = '/';
        if (write_text(path, p->sysctl[i].value) != 0)
            child_fail("namespaces", "sysctl %s: %s", p->sysctl[i].key, strerror(errno));
    }
    if (p->loopback) {
        int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        struct ifreq ifr;
        memset(&ifr, 0, sizeof ifr);
        strcpy(ifr.ifr_name, "lo");
        if (s < 0 || ioctl(s, SIOCGIFFLAGS, &ifr) != 0)
            child_fail("namespaces", "loopback: %s", strerror(errno));
        ifr.ifr_flags |= IFF_UP;
        CHECK("namespaces", ioctl(s, SIOCSIFFLAGS, &ifr));
        close(s);
    }
    build_root(p, &t, roottree);
    /* _payload_alone: session, identity steps, then the payload's own last steps */
    CHECK("hygiene", setsid());
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
    if (write(f->created_w, "c", 1) != 1)
        _exit(EXIT_INTERNAL);
    close(f->created_w);
    CHECK("hygiene", fcntl(f->gate, F_SETFL, 0));
    unsigned char got[9];
    size_t have = 0;
    while (have < sizeof got) {
        ssize_t n = read(f->gate, got + have, sizeof got - have);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        have += (size_t)n;
    }
    if (have != sizeof got || got[0] != 's')
        _exit(EXIT_INTERNAL); /* deleted before start: never run the payload */
    uint64_t slen = 0;
    for (int i = 8; i >= 1; i--)
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
            _exit(step_code("seccomp"));
    }
    if (!p->nnp)
        apply_caps(p);
    execve(path, p->argv, p->env);
    _exit(errno == ENOENT ? 127 : 126);
}

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

/* Own cgroup path of this process in a v1 controller, or v2 for "" (/proc/self/cgroup). */
static int own_cgroup(const char *ctrl, char *out, size_t n) {
    char buf[8192];
    if (read_text("/proc/self/cgroup", buf, sizeof buf) < 0)
        return -1;
    char *save = NULL;
    for (char *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *c1 = strchr(line, ':');
        char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (c2 == NULL)
            continue;
        *c2 = '\0';
        if (ctrl[0] == '\0') { /* v2: "0::/path" */
            if (c1 == line + 1 && line[0] == '0' && c1[1] == '\0')
                return snprintf(out, n, "%s", c2 + 1) < (int)n ? 0 : -1;
            continue;
        }
        char *save2 = NULL;
        for (char *c = strtok_r(c1 + 1, ",", &save2); c; c = strtok_r(NULL, ",", &save2))
            if (strcmp(c, ctrl) == 0)
                return snprintf(out, n, "%s", c2 + 1) < (int)n ? 0 : -1;
    }
    return -1;
}

/* cgroupfs.make_below: mkdir -p base/rel one component at a time through directory
   fds, never following a symlink, taking `.`/`..` or leaving base's filesystem; an
   existing last component is an error unless exist_ok. 0, or -1 with errno (and the
   directories it made removed again). */
static int mkdir_below(const char *base, const char *rel, int exist_ok) {
    size_t len = strlen(rel), ends[FAST_MAX];
    int nmade = 0, ncomp = 0, err = 0;
    int fd = open(base, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    struct stat st;
    if (fd < 0)
        return -1;
    if (fstat(fd, &st) != 0) {
        err = errno;
        close(fd);
        errno = err;
        return -1;
    }
    dev_t dev = st.st_dev;
    for (size_t i = 0; i < len && !err;) {
        while (i < len && rel[i] == '/')
            i++;
        if (i >= len)
            break;
        size_t j = i;
        while (j < len && rel[j] != '/')
            j++;
        char name[256];
        if (j - i >= sizeof name) {
            err = ENAMETOOLONG;
            break;
        }
        memcpy(name, rel + i, j - i);
        name[j - i] = '\0';
        size_t k = j;
        while (k < len && rel[k] == '/')
            k++;
        int last = k >= len;
        ncomp++;
        if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0) {
            err = EINVAL;
        } else if (mkdirat(fd, name, 0755) == 0) {
            if (nmade < FAST_MAX)
                ends[nmade++] = j;
        } else if (errno != EEXIST || (last && !exist_ok)) {
            err = errno;
        }
        if (err)
            break;
        int sub = openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (sub < 0) {
            err = errno;
            break;
        }
        close(fd);
        fd = sub;
        if (fstat(fd, &st) != 0 || st.st_dev != dev)
            err = EXDEV;
        i = j;
    }
    close(fd);
    if (!err && ncomp == 0)
        err = EINVAL;
    if (err) {
        for (int k = nmade - 1; k >= 0; k--) {
            char path[PATH_MAX];
            if (snprintf(path, sizeof path, "%s/%.*s", base, (int)ends[k], rel) < (int)sizeof path)
                rmdir(path);
        }
        errno = err;
        return -1;
    }
    return 0;
}

/* Tests only: stop here when STOCKADE_TEST_PAUSE names this point of create, so that a
   test can SIGKILL it exactly there (lifecycle.pause_for_tests has the same points). */
static void pause_for_tests(const char *point) {
    const char *want = getenv("STOCKADE_TEST_PAUSE");
    if (want != NULL && strcmp(want, point) == 0)
        raise(SIGSTOP);
}

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

static int has_word(const char *list, const char *word) {
    size_t n = strlen(word);
    for (const char *s = list; (s = strstr(s, word)) != NULL; s += n)
        if ((s == list || s[-1] == ' ' || s[-1] == '\n') && (s[n] == '\0' || s[n] == ' ' || s[n] == '\n'))
            return 1;
    return 0;
}

static void read_small(const char *dir, const char *name, char *out, size_t n) {
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (read_text(path, out, n) < 0)
        out[0] = '\0';
}

/* v2.V2Cgroup's _enable: the wanted controllers this parent has but does not pass on. */
static void enable_controllers(struct made *m, const struct plan *p, const char *dir) {
    char avail[4096], enabled[4096], want[1024] = "";
    read_small(dir, "cgroup.controllers", avail, sizeof avail);
    read_small(dir, "cgroup.subtree_control", enabled, sizeof enabled);
    for (int i = 0; i < p->nenable; i++)
        if (has_word(avail, p->enable[i]) && !has_word(enabled, p->enable[i]) &&
            strlen(want) + strlen(p->enable[i]) + 3 < sizeof want) {
            strcat(want, want[0] ? " +" : "+");
            strcat(want, p->enable[i]);
        }
    if (!want[0])
        return;
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/cgroup.subtree_control", dir);
    if (write_text(path, want) != 0)
        undo_miss(m, "%s: %s", path, strerror(errno));
}

struct x_bpf_load {
    uint32_t prog_type, insn_cnt;
    uint64_t insns, license;
    uint32_t log_level, log_size;
    uint64_t log_buf;
    uint32_t kern_version, prog_flags;
    char name[16];
    uint32_t ifindex, expected_attach_type;
};
struct x_bpf_attach { uint32_t target_fd, attach_bpf_fd, attach_type, attach_flags, replace_bpf_fd; };

/* devices_bpf.attach: load the device program, attach it to the cgroup (ALLOW_MULTI). */
static int attach_device_program(int cgfd, const unsigned char *prog, size_t len) {
    static const char license[] = "Apache-2.0";
    struct x_bpf_load load;
    memset(&load, 0, sizeof load);
    load.prog_type = 15; /* BPF_PROG_TYPE_CGROUP_DEVICE */
    load.insn_cnt = (uint32_t)(len / 8);
    load.insns = (uint64_t)(uintptr_t)prog;
    load.license = (uint64_t)(uintptr_t)license;
    snprintf(load.name, sizeof load.name, "stockade_dev");
    int pfd = (int)syscall(SYS_bpf, 5 /* BPF_PROG_LOAD */, &load, sizeof load);
    if (pfd < 0)
        return -1;
    struct x_bpf_attach at = {(uint32_t)cgfd, (uint32_t)pfd, 6 /* BPF_CGROUP_DEVICE */,
                              2 /* BPF_F_ALLOW_MULTI */, 0};
    int rc = (int)syscall(SYS_bpf, 8 /* BPF_PROG_ATTACH */, &at, sizeof at);
    int e = errno;
    close(pfd);
    errno = e;
    return rc;
}

static void write_limit(struct made *m, const char *dir, const struct cgwrite *w) {
    char path[PATH_MAX + 256];
    snprintf(path, sizeof path, "%s/%s", dir, w->file);
    if (write_text(path, w->value) != 0)
        undo_miss(m, "%s: %s", path, strerror(errno)); /* Python says which controller */
}

/* cgroups.create + apply, each directory recorded in the state at once. Returns the v2
   directory (O_PATH, for clone3) or -1 for v1, where the child joins through `tasks`. */
static int make_cgroups(struct made *m, const struct plan *p, const char *id,
                        char ctldir[][PATH_MAX]) {
    static char bases[FAST_MAX][PATH_MAX];
    char rel[PATH_MAX];
    if (p->cg_leaf[0])
        snprintf(rel, sizeof rel, "%s", p->cg_leaf);
    else if (snprintf(rel, sizeof rel, "stockade/%s", id) >= (int)sizeof rel)
        undo_miss(m, "cgroup path too long");
    for (int i = 0; i < p->nctl; i++) {
        struct statfs sfs;
        long magic = p->cg_mode == 2 ? CGROUP2_SUPER_MAGIC : CGROUP_SUPER_MAGIC;
        if (statfs(p->ctl[i].mount, &sfs) != 0 || sfs.f_type != magic)
            undo_miss(m, "%s is not the cgroup mount it was", p->ctl[i].mount);
        char own[PATH_MAX] = "/";
        if (!p->ctl[i].absolute && own_cgroup(p->ctl[i].name, own, sizeof own) != 0)
            undo_miss(m, "own %s cgroup unknown", p->ctl[i].name);
        const char *o = own;
        while (*o == '/')
            o++;
        if (snprintf(bases[i], PATH_MAX, "%s%s%s", p->ctl[i].mount, *o ? "/" : "", o) >= PATH_MAX ||
            snprintf(ctldir[i], PATH_MAX, "%s/%s", bases[i], rel) >= PATH_MAX)
            undo_miss(m, "cgroup path too long");
    }
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
        if (p->cg_mode == 2 && !p->cg_leaf[0]) { /* V2Cgroup.create, default layout */
            char parent[PATH_MAX + 16];
            snprintf(parent, sizeof parent, "%s/stockade", bases[i]);
            if (mkdir_below(bases[i], "stockade", 1) != 0)
                undo_miss(m, "cannot create %s: %s", parent, strerror(errno));
            enable_controllers(m, p, bases[i]);
            enable_controllers(m, p, parent);
            if (mkdir(ctldir[i], 0755) != 0 && errno != EEXIST)
                undo_miss(m, "cannot create %s: %s", ctldir[i], strerror(errno));
        } else if (mkdir_below(bases[i], rel, 0) != 0) {
            undo_miss(m, "cannot create %s: %s", ctldir[i], strerror(errno));
        }
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
    if (p->cg_mode == 1) {
        for (int i = 0; i < p->ncgw; i++) {
            int ci = -1;
            for (int j = 0; j < p->nctl; j++)
                if (strcmp(p->ctl[j].name, p->cgw[i].ctrl) == 0)
                    ci = j;
            if (ci < 0)
                undo_miss(m, "no %s cgroup", p->cgw[i].ctrl);
            write_limit(m, ctldir[ci], &p->cgw[i]);
        }
        return -1;
    }
    for (int i = 0; i < p->ncgw; i++)
        write_limit(m, ctldir[0], &p->cgw[i]);
    int cgfd = open(ctldir[0], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (cgfd < 0)
        undo_miss(m, "%s: %s", ctldir[0], strerror(errno));
    if (p->devprog_len && attach_device_program(cgfd, p->devprog, p->devprog_len) != 0)
        undo_miss(m, "device rules (eBPF program on %s): %s", ctldir[0], strerror(errno));
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
static void __attribute__((noreturn)) fast_create(const char *root, const char *id, const char *bundle_arg,
                                                  const char *pid_file, int run) {
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
    /* rootfs.prepare_mountpoints: in the runtime, resolved inside the rootfs */
    int rfd = open(p.rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (rfd < 0)
        undo_miss(&m, "rootfs %s: %s", p.rootfs, strerror(errno));
    int nfresh = 0;
    const char *freshs[FAST_MAX];
    for (int i = 0; i < p.nmounts; i++) {
        const struct mop *mo = &p.mounts[i];
        int below = 0;
        size_t dl = strlen(mo->dst);
        for (int j = 0; j < nfresh; j++) {
            size_t fl = strlen(freshs[j]);
            while (fl > 0 && freshs[j][fl - 1] == '/')
                fl--;
            below |= dl > fl && strncmp(mo->dst, freshs[j], fl) == 0 && mo->dst[fl] == '/';
        }
        if (below)
            continue;
        if (mo->kind == K_DEV || mo->kind == K_TMPFS || mo->kind == K_FS)
            freshs[nfresh++] = mo->dst;
        if (mo->optional || mo->kind == K_READONLY || mo->kind == K_MASK)
            continue;
        if (mo->kind == K_WRITABLE && !mo->src[0])
            continue;
        struct stat sst;
        int kind = (mo->kind == K_BIND && !(stat(mo->src, &sst) == 0 && S_ISDIR(sst.st_mode))) ? 2 : 1;
        int fd = resolve(rfd, mo->dst, kind);
        if (fd < 0)
            undo_miss(&m, "mountpoint %s: %s", mo->dst, strerror(errno));
        close(fd);
    }
    close(rfd);
    /* the clone (launcher._clone), tasks fds opened here with our credentials */
    struct child_fds f;
    memset(&f, 0, sizeof f);
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
    long pid;
    if (cgfd >= 0) { /* v2: born inside its cgroup (launcher: clone3_into_cgroup) */
        uint64_t args[11] = {p.clone_flags | X_CLONE_INTO_CGROUP, 0, 0, 0, SIGCHLD, 0, 0, 0, 0, 0,
                             (uint64_t)cgfd};
        pid = syscall(SYS_clone3, args, sizeof args);
    } else {
        pid = syscall(SYS_clone, (unsigned long)p.clone_flags | SIGCHLD, NULL, NULL, NULL, NULL);
    }
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
    if (p.userns) { /* idmap.write_maps, as root: uid_map, then gid_map */
        const char *files[3] = {"uid_map", "setgroups", "gid_map"};
        const char *maps[3] = {p.uid_map, "deny", p.gid_map};
        for (int i = 0; i < 3; i++) {
            char path[64];
            if (i == 1 && p.setgroups)
                continue; /* "deny" only when the plan says so (unprivileged maps) */
            snprintf(path, sizeof path, "/proc/%ld/%s", pid, files[i]);
            if (write_text(path, maps[i]) != 0)
                undo_miss(&m, "%s: %s", path, strerror(errno));
        }
    }
    if (write(syncp[1], "g", 1) != 1)
        undo_miss(&m, "the container's process is gone");
    close(syncp[1]);
    char got[8];
    ssize_t n = read(createdp[0], got, sizeof got);
    if (n != 1 || got[0] != 'c') {
        char msg[1024];
        ssize_t e = read(errp[0], msg, sizeof msg - 1);
        msg[e > 0 ? e : 0] = '\0';
        undo_miss(&m, "the container's process failed: %s", e > 0 ? msg : "(no message)");
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
    if (write_state(m.dirfd, &p, &m.st) != 0 || write_fast(m.dirfd, &p, &m.st) != 0)
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
    static const char go[9] = {'s', 0, 0, 0, 0, 0, 0, 0, 0};
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
