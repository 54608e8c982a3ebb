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
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/utsname.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stdint.h>
#include <stdarg.h>
#include <limits.h>
#include <json-c/json.h>
#include "../executor/protocol.h"
#include "steps.h"

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
    const char *apparmor_profile, *selinux_label; /* NULL for none */
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

/* --- reading a stored plan (executor/plan_json.py writes it; docs/EXECUTOR.md) ------ */

#define PLAN_VERSION 1

/* The first field that is missing or not of its documented type: a typed refusal. */
struct rd { int bad; char why[512]; };

static void __attribute__((format(printf, 2, 3))) r_fail(struct rd *r, const char *fmt, ...) {
    if (r->bad)
        return;
    r->bad = 1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->why, sizeof r->why, fmt, ap);
    va_end(ap);
}

static const char *type_name(json_type t) {
    switch (t) {
    case json_type_null: return "null";
    case json_type_boolean: return "a boolean";
    case json_type_int: return "an integer";
    case json_type_double: return "a number";
    case json_type_string: return "a string";
    case json_type_array: return "a list";
    case json_type_object: return "an object";
    }
    return "?";
}

/* The field `key` of object `o` (NULL when `o` is NULL: an earlier refusal), of type t;
   `nullable`: JSON null is accepted too (and NULL returned). */
static json_object *r_field(struct rd *r, json_object *o, const char *key, json_type t, int nullable) {
    json_object *v = NULL;
    if (r->bad || o == NULL)
        return NULL;
    if (!json_object_object_get_ex(o, key, &v)) {
        r_fail(r, "field %s: missing", key);
        return NULL;
    }
    if (v == NULL && nullable)
        return NULL;
    if (json_object_get_type(v) != t) {
        r_fail(r, "field %s: %s expected, found %s", key, type_name(t), type_name(json_object_get_type(v)));
        return NULL;
    }
    return v;
}

static const char *r_strv(struct rd *r, json_object *v, const char *what) {
    if (r->bad)
        return "";
    if (json_object_get_type(v) != json_type_string) { /* NULL: JSON null */
        r_fail(r, "%s: a string expected, found %s", what, type_name(json_object_get_type(v)));
        return "";
    }
    const char *s = json_object_get_string(v);
    if (strlen(s) != (size_t)json_object_get_string_len(v)) {
        r_fail(r, "%s: a NUL byte in a string", what);
        return "";
    }
    return s;
}

static const char *r_str(struct rd *r, json_object *o, const char *key) {
    return r_strv(r, r_field(r, o, key, json_type_string, 0), key);
}

/* A string or null (NULL). */
static const char *r_str_or_null(struct rd *r, json_object *o, const char *key) {
    json_object *v = r_field(r, o, key, json_type_string, 1);
    return v == NULL ? NULL : r_strv(r, v, key);
}

static uint64_t r_intv(struct rd *r, json_object *v, const char *what) {
    if (r->bad)
        return 0;
    if (json_object_get_type(v) != json_type_int) {
        r_fail(r, "%s: an integer expected, found %s", what, type_name(json_object_get_type(v)));
        return 0;
    }
    /* json-c keeps integers above INT64_MAX as unsigned: both read as their 64 bits */
    int64_t i = json_object_get_int64(v);
    if (i == INT64_MAX)
        return json_object_get_uint64(v);
    return (uint64_t)i;
}

static uint64_t r_int(struct rd *r, json_object *o, const char *key) {
    return r_intv(r, r_field(r, o, key, json_type_int, 0), key);
}

static int r_bool(struct rd *r, json_object *o, const char *key) {
    json_object *v = r_field(r, o, key, json_type_boolean, 0);
    return v != NULL && json_object_get_boolean(v);
}

static json_object *r_obj(struct rd *r, json_object *o, const char *key) {
    return r_field(r, o, key, json_type_object, 0);
}

/* A list of at most max items (its length in *n). */
static json_object *r_list(struct rd *r, json_object *o, const char *key, int max, int *n) {
    *n = 0;
    json_object *v = r_field(r, o, key, json_type_array, 0);
    if (v == NULL)
        return NULL;
    size_t len = json_object_array_length(v);
    if (len > (size_t)max) {
        r_fail(r, "field %s: more than %d items", key, max);
        return NULL;
    }
    *n = (int)len;
    return v;
}

/* Item i of a list, itself a list of exactly `want` items. */
static json_object *r_tuple(struct rd *r, json_object *list, int i, size_t want, const char *what) {
    if (r->bad || list == NULL)
        return NULL;
    json_object *v = json_object_array_get_idx(list, (size_t)i);
    if (json_object_get_type(v) != json_type_array || json_object_array_length(v) != want) {
        r_fail(r, "%s[%d]: a list of %zu expected", what, i, want);
        return NULL;
    }
    return v;
}

static json_object *r_item(json_object *list, int i) {
    return list == NULL ? NULL : json_object_array_get_idx(list, (size_t)i);
}

/* Lowercase hex of a byte string (seccomp filters, the device program). */
static const unsigned char *r_hex(struct rd *r, const char *hex, size_t *len, const char *what) {
    size_t n = strlen(hex);
    *len = 0;
    if (n % 2) {
        r_fail(r, "%s: hex of odd length", what);
        return NULL;
    }
    unsigned char *out = malloc(n / 2 + 1);
    if (out == NULL) {
        r_fail(r, "%s: out of memory", what);
        return NULL;
    }
    for (size_t i = 0; i < n / 2; i++) {
        int v = 0;
        for (int j = 0; j < 2; j++) {
            char c = hex[2 * i + (size_t)j];
            int d = (c >= '0' && c <= '9') ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
            if (d < 0) {
                free(out);
                r_fail(r, "%s: not lowercase hex", what);
                return NULL;
            }
            v = v * 16 + d;
        }
        out[i] = (unsigned char)v;
    }
    *len = n / 2;
    return out;
}

/* [[inside, outside, count], ...] as /proc/PID/uid_map takes it. */
static const char *r_idmap(struct rd *r, json_object *o, const char *key, int *zero_inside) {
    int n;
    json_object *list = r_list(r, o, key, FAST_MAX, &n);
    char *text = calloc((size_t)n + 1, 64);
    if (text == NULL) {
        r_fail(r, "%s: out of memory", key);
        return "";
    }
    size_t at = 0;
    *zero_inside = 0;
    for (int i = 0; i < n; i++) {
        json_object *t = r_tuple(r, list, i, 3, key);
        uint64_t in = r_intv(r, r_item(t, 0), key), out = r_intv(r, r_item(t, 1), key);
        uint64_t count = r_intv(r, r_item(t, 2), key);
        *zero_inside |= in == 0;
        at += (size_t)snprintf(text + at, 64, "%llu %llu %llu\n", (unsigned long long)in,
                               (unsigned long long)out, (unsigned long long)count);
    }
    return text;
}

/* [[key, value], ...] of strings (value: a string or, when nullable, null). */
static int r_pairs(struct rd *r, json_object *o, const char *key, struct kv *out, int nullable) {
    int n;
    json_object *list = r_list(r, o, key, FAST_MAX, &n);
    for (int i = 0; i < n; i++) {
        json_object *t = r_tuple(r, list, i, 2, key);
        out[i].key = r_strv(r, r_item(t, 0), key);
        json_object *v = r_item(t, 1);
        out[i].value = (nullable && t != NULL && v == NULL) ? NULL : r_strv(r, v, key);
    }
    return n;
}

static int r_strings(struct rd *r, json_object *o, const char *key, int max, const char **out) {
    int n;
    json_object *list = r_list(r, o, key, max, &n);
    for (int i = 0; i < n; i++)
        out[i] = r_strv(r, r_item(list, i), key);
    return n;
}

static const char *const MOUNT_KINDS[] = {"", "proc", "sysfs", "tmpfs", "dev", "fs", "bind",
                                          "writable", "readonly", "mask"};

static void read_mount(struct rd *r, json_object *o, struct mop *m) {
    if (!r->bad && json_object_get_type(o) != json_type_object) {
        r_fail(r, "mounts: an object expected");
        return;
    }
    const char *kind = r_str(r, o, "kind");
    m->kind = 0;
    for (uint64_t k = K_PROC; k <= K_MASK; k++)
        if (strcmp(kind, MOUNT_KINDS[k]) == 0)
            m->kind = k;
    if (!r->bad && m->kind == 0)
        r_fail(r, "mounts.kind: %s is not a mount kind", kind);
    m->dst = r_str(r, o, "destination");
    m->src = r_str(r, o, "source");
    m->readonly = (uint64_t)r_bool(r, o, "readonly");
    m->optional = (uint64_t)r_bool(r, o, "optional");
    m->fstype = r_str(r, o, "fstype");
    m->attrs = r_int(r, o, "attrs");
    m->source = r_str(r, o, "fs_source");
    m->propagation = r_int(r, o, "propagation");
    m->ndata = r_pairs(r, o, "data", m->data, 1);
}

static void read_cgroups(struct rd *r, json_object *o, struct plan *p) {
    const char *mode = r_str(r, o, "mode");
    p->cg_mode = strcmp(mode, "v1") == 0 ? 1 : strcmp(mode, "v2") == 0 ? 2 : 0;
    if (!r->bad && p->cg_mode == 0)
        r_fail(r, "cgroups.mode: v1 or v2 expected, found %s", mode);
    json_object *ctls = r_list(r, o, "controllers", FAST_MAX, &p->nctl);
    int absolute = r_bool(r, o, "absolute");
    for (int i = 0; i < p->nctl; i++) {
        json_object *c = r_item(ctls, i);
        p->ctl[i].name = r_str(r, c, "name");
        p->ctl[i].mount = r_str(r, c, "mount");
        p->ctl[i].absolute = (uint64_t)absolute;
    }
    p->cg_leaf = r_str(r, o, "leaf");
    json_object *writes = r_list(r, o, "writes", FAST_MAX, &p->ncgw);
    for (int i = 0; i < p->ncgw; i++) {
        json_object *w = r_item(writes, i);
        p->cgw[i].ctrl = r_str(r, w, "controller");
        p->cgw[i].file = r_str(r, w, "file");
        p->cgw[i].value = r_str(r, w, "value");
    }
    p->nenable = r_strings(r, o, "enable", FAST_MAX, p->enable);
    p->devprog = r_hex(r, r_str(r, o, "device_program"), &p->devprog_len, "cgroups.device_program");
}

static int read_plan(struct rd *r, json_object *doc, struct plan *p) {
    memset(p, 0, sizeof *p);
    json_object *ns = r_obj(r, doc, "namespaces");
    p->clone_flags = r_int(r, ns, "clone_flags");
    p->cgroup_ns = (uint64_t)r_bool(r, ns, "cgroup_ns");
    p->loopback = (uint64_t)r_bool(r, ns, "loopback");
    const char *hostname = r_str_or_null(r, ns, "hostname");
    p->hostname = hostname != NULL ? hostname : "";
    p->nsysctl = r_pairs(r, ns, "sysctl", p->sysctl, 0);
    read_cgroups(r, r_obj(r, doc, "cgroups"), p);
    json_object *oom = r_field(r, doc, "oom_score_adj", json_type_int, 1);
    p->has_oom = oom != NULL;
    p->oom = oom != NULL ? (int64_t)r_intv(r, oom, "oom_score_adj") : 0;
    json_object *root = r_obj(r, doc, "root");
    p->rootfs = r_str(r, root, "path");
    p->root_readonly = (uint64_t)r_bool(r, root, "readonly");
    p->root_propagation = r_int(r, root, "propagation");
    json_object *mounts = r_list(r, doc, "mounts", FAST_MAX, &p->nmounts);
    p->mounts = calloc((size_t)p->nmounts + 1, sizeof *p->mounts);
    if (p->mounts == NULL)
        r_fail(r, "mounts: out of memory");
    for (int i = 0; i < p->nmounts && !r->bad; i++)
        read_mount(r, r_item(mounts, i), &p->mounts[i]);
    json_object *id = r_obj(r, doc, "identity");
    p->userns = (uint64_t)r_bool(r, id, "userns");
    int uid_root = 0, gid_root = 0;
    p->uid_map = r_idmap(r, id, "uid_map", &uid_root);
    p->gid_map = r_idmap(r, id, "gid_map", &gid_root);
    p->maps_root = (uint64_t)(uid_root && gid_root); /* child._maps_root */
    p->uid = r_int(r, id, "uid");
    p->gid = r_int(r, id, "gid");
    p->setgroups = (uint64_t)r_bool(r, id, "setgroups");
    json_object *groups = r_list(r, id, "groups", FAST_MAX, &p->ngroups);
    for (int i = 0; i < p->ngroups; i++)
        p->groups[i] = (gid_t)r_intv(r, r_item(groups, i), "groups");
    json_object *caps = r_obj(r, doc, "caps");
    p->bounding = r_int(r, caps, "bounding");
    p->permitted = r_int(r, caps, "permitted");
    p->effective = r_int(r, caps, "effective");
    p->inheritable = r_int(r, caps, "inheritable");
    p->last_cap_plan = r_int(r, caps, "last_cap");
    json_object *ambient = r_list(r, caps, "ambient", FAST_MAX, &p->nambient);
    for (int i = 0; i < p->nambient; i++)
        p->ambient[i] = r_intv(r, r_item(ambient, i), "ambient");
    json_object *rlimits = r_list(r, doc, "rlimits", FAST_MAX, &p->nrlimits);
    for (int i = 0; i < p->nrlimits; i++) {
        json_object *t = r_tuple(r, rlimits, i, 3, "rlimits");
        for (int j = 0; j < 3; j++) /* -1: RLIM_INFINITY */
            p->rlimits[i][j] = r_intv(r, r_item(t, j), "rlimits");
    }
    json_object *lsm = r_obj(r, doc, "lsm");
    p->apparmor_profile = r_str_or_null(r, lsm, "apparmor_profile");
    p->selinux_label = r_str_or_null(r, lsm, "selinux_label");
    p->nnp = (uint64_t)r_bool(r, doc, "no_new_privs");
    json_object *sc = r_obj(r, doc, "seccomp");
    p->seccomp_flags = r_int(r, sc, "flags");
    const char *filters[2] = {"", ""};
    int nfilters = r_strings(r, sc, "filters", 2, filters);
    for (int i = 0; i < nfilters; i++)
        p->bpf[i] = r_hex(r, filters[i], &p->bpf_len[i], "seccomp.filters");
    json_object *proc = r_obj(r, doc, "process");
    p->nargv = r_strings(r, proc, "argv", FAST_MAX, (const char **)p->argv);
    p->nenv = r_strings(r, proc, "env", FAST_MAX * 4, (const char **)p->env);
    p->cwd = r_str(r, proc, "cwd");
    json_object *um = r_field(r, proc, "umask", json_type_int, 1);
    p->has_umask = um != NULL;
    p->umask = um != NULL ? r_intv(r, um, "umask") : 0;
    json_object *home = r_field(r, proc, "home_of_uid", json_type_int, 1);
    p->home_lookup = home != NULL;
    p->home_uid = home != NULL ? r_intv(r, home, "home_of_uid") : 0;
    p->path_var = r_str(r, proc, "path");
    json_object *st = r_obj(r, doc, "state");
    p->st_rootfs = r_str(r, st, "rootfs");
    p->nann = r_pairs(r, st, "annotations", p->ann, 0);
    p->nnotes = r_strings(r, doc, "notes", FAST_MAX, p->notes);
    if (r->bad)
        return 0;
    if (p->nargv == 0)
        r_fail(r, "process.argv: empty");
    else if (p->bpf_len[0] % 8 || p->bpf_len[1] % 8 || p->devprog_len % 8)
        r_fail(r, "a BPF program is not whole instructions");
    else if (p->cg_mode == 2 && p->nctl != 1)
        r_fail(r, "cgroups.controllers: one expected on v2");
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
       runner.cgroups.detect): a plan is used only under the view it was made in. On a
       host whose /sys/fs/cgroup is cgroup2 itself the switch changes nothing. */
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

/* --- the container's process (runner/child.py, no init, no user namespace) ------- */

static int g_err_w = -1;

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
    _exit(stk_exit_code(step));
}

/* A failed set-up step (executor/steps): its message to the runtime, its exit code. */
static void __attribute__((noreturn)) step_failed(const struct stk_result *r) {
    child_fail(r->step, "%s", r->message);
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

#ifdef STOCKADE_TEST_HOOKS
/* Tests only: stop here when STOCKADE_TEST_PAUSE names this point of create, so that a
   test can SIGKILL it exactly there (lifecycle.pause_for_tests has the same points). The
   tests' own build defines STOCKADE_TEST_HOOKS; the installed front end has no such
   points. */
static void pause_for_tests(const char *point) {
    const char *want = getenv("STOCKADE_TEST_PAUSE");
    if (want != NULL && strcmp(want, point) == 0)
        raise(SIGSTOP);
}

/* `--read-plan FILE`: read a plan as create does (no host checks) and print what was
   read, or why it is refused (exit 1): the tests' check of this reader, without root. */
static void __attribute__((noreturn)) read_plan_for_tests(const char *path) {
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
    if (write(syncp[1], &(char){MSG_GO}, 1) != 1)
        undo_miss(&m, "the container's process is gone");
    close(syncp[1]);
    char got[8];
    ssize_t n = read(createdp[0], got, sizeof got);
    if (n != 1 || got[0] != MSG_CREATED) {
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
