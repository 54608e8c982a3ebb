/* The plan reader: executor/plan_json.py writes the plan, this refuses any field of another
 * shape (the same checks as plan_json.loads; docs/EXECUTOR.md). */
#define _GNU_SOURCE
#include "executor.h"


/* The first field that is missing or not of its documented type: a typed refusal. */

void __attribute__((format(printf, 2, 3))) r_fail(struct rd *r, const char *fmt, ...) {
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
json_object *r_field(struct rd *r, json_object *o, const char *key, json_type t, int nullable) {
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

const char *r_strv(struct rd *r, json_object *v, const char *what) {
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

const char *r_str(struct rd *r, json_object *o, const char *key) {
    return r_strv(r, r_field(r, o, key, json_type_string, 0), key);
}

/* A string or null (NULL). */
static const char *r_str_or_null(struct rd *r, json_object *o, const char *key) {
    json_object *v = r_field(r, o, key, json_type_string, 1);
    return v == NULL ? NULL : r_strv(r, v, key);
}

uint64_t r_intv(struct rd *r, json_object *v, const char *what) {
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

uint64_t r_int(struct rd *r, json_object *o, const char *key) {
    return r_intv(r, r_field(r, o, key, json_type_int, 0), key);
}

static int r_bool(struct rd *r, json_object *o, const char *key) {
    json_object *v = r_field(r, o, key, json_type_boolean, 0);
    return v != NULL && json_object_get_boolean(v);
}

json_object *r_obj(struct rd *r, json_object *o, const char *key) {
    return r_field(r, o, key, json_type_object, 0);
}

/* A list of at most max items (its length in *n). */
json_object *r_list(struct rd *r, json_object *o, const char *key, int max, int *n) {
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
json_object *r_tuple(struct rd *r, json_object *list, int i, size_t want, const char *what) {
    if (r->bad || list == NULL)
        return NULL;
    json_object *v = json_object_array_get_idx(list, (size_t)i);
    if (json_object_get_type(v) != json_type_array || json_object_array_length(v) != want) {
        r_fail(r, "%s[%d]: a list of %zu expected", what, i, want);
        return NULL;
    }
    return v;
}

json_object *r_item(json_object *list, int i) {
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

/* A NULL-terminated vector of the strings of list `key`, with `spare` slots more (HOME). */
static char **r_vector(struct rd *r, json_object *o, const char *key, int max, int spare, int *n) {
    json_object *list = r_list(r, o, key, max, n);
    char **out = calloc((size_t)*n + (size_t)spare + 1, sizeof *out);
    if (out == NULL) {
        r_fail(r, "%s: out of memory", key);
        *n = 0;
        static char *none[1] = {NULL};
        return none;
    }
    for (int i = 0; i < *n; i++)
        out[i] = (char *)r_strv(r, r_item(list, i), key);
    return out;
}

const char *const MOUNT_KINDS[] = {"", "proc", "sysfs", "tmpfs", "dev", "fs", "bind",
                                   "writable", "readonly", "mask", "symlink", "file"};

static void read_mount(struct rd *r, json_object *o, struct mop *m) {
    if (!r->bad && json_object_get_type(o) != json_type_object) {
        r_fail(r, "mounts: an object expected");
        return;
    }
    const char *kind = r_str(r, o, "kind");
    m->kind = 0;
    for (uint64_t k = K_PROC; k <= K_FILE; k++)
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
    m->why = r_str(r, o, "why");
}

static void read_cgroups(struct rd *r, json_object *o, struct plan *p) {
    const char *mode = r_str(r, o, "mode");
    /* "none": a run document (the runtime made the cgroups itself) */
    p->cg_mode = strcmp(mode, "v1") == 0 ? 1 : strcmp(mode, "v2") == 0 ? 2 : 0;
    if (!r->bad && p->cg_mode == 0 && strcmp(mode, "none") != 0)
        r_fail(r, "cgroups.mode: v1, v2 or none expected, found %s", mode);
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
        p->cgw[i].key = r_str(r, w, "key");
        p->cgw[i].file = r_str(r, w, "file");
        p->cgw[i].value = r_str(r, w, "value");
        json_object *absent = r_field(r, w, "absent", json_type_array, 1);
        p->cgw[i].absent = ABSENT_ERROR;
        p->cgw[i].absent_text = "";
        if (absent != NULL) { /* ["note" | "fail", text] */
            if (json_object_array_length(absent) != 2)
                r_fail(r, "cgroups.writes.absent: [\"note\" or \"fail\", text] expected");
            const char *kind = r_strv(r, r_item(absent, 0), "cgroups.writes.absent");
            p->cgw[i].absent_text = r_strv(r, r_item(absent, 1), "cgroups.writes.absent");
            p->cgw[i].absent = strcmp(kind, "note") == 0 ? ABSENT_NOTE
                               : strcmp(kind, "fail") == 0 ? ABSENT_FAIL : -1;
            if (!r->bad && p->cgw[i].absent < 0)
                r_fail(r, "cgroups.writes.absent: \"note\" or \"fail\" expected, found %s", kind);
        }
    }
    p->cg_name = r_str(r, o, "name");
    p->cg_record = (uint64_t)r_bool(r, o, "record");
    p->nenable = r_strings(r, o, "enable", FAST_MAX, p->enable);
    p->devprog = r_hex(r, r_str(r, o, "device_program"), &p->devprog_len, "cgroups.device_program");
}

int read_plan(struct rd *r, json_object *doc, struct plan *p) {
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
    p->root_host = (uint64_t)r_bool(r, root, "host");
    p->root_jail = (uint64_t)r_bool(r, root, "jail");
    json_object *mounts = r_list(r, doc, "mounts", MAX_MOUNTS, &p->nmounts);
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
    /* both maps hold id 0 inside: the process can become root of its user namespace */
    p->maps_root = (uint64_t)(uid_root && gid_root);
    p->uid = r_int(r, id, "uid");
    p->gid = r_int(r, id, "gid");
    p->setgroups = (uint64_t)r_bool(r, id, "setgroups");
    const char *helper = r_str(r, id, "helper");
    p->maps_direct = strcmp(helper, "direct") == 0;
    if (!r->bad && !p->maps_direct && strcmp(helper, "newuidmap") != 0)
        r_fail(r, "identity.helper: direct or newuidmap expected, found %s", helper);
    json_object *owner = r_field(r, id, "owner", json_type_int, 1);
    p->has_owner = owner != NULL;
    p->owner = owner != NULL ? r_intv(r, owner, "owner") : 0;
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
    const char *filters[3] = {"", "", ""};
    int nfilters = r_strings(r, sc, "filters", 3, filters);
    for (int i = 0; i < nfilters; i++)
        p->bpf[i] = r_hex(r, filters[i], &p->bpf_len[i], "seccomp.filters");
    json_object *proc = r_obj(r, doc, "process");
    p->argv = r_vector(r, proc, "argv", MAX_ARGS, 0, &p->nargv);
    p->env = r_vector(r, proc, "env", MAX_ARGS, 1, &p->nenv); /* + HOME */
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
    read_process_extras(r, doc, p);
    if (r->bad)
        return 0;
    if (p->nargv == 0)
        r_fail(r, "process.argv: empty");
    else if (p->bpf_len[0] % 8 || p->bpf_len[1] % 8 || p->bpf_len[2] % 8 || p->devprog_len % 8)
        r_fail(r, "a BPF program is not whole instructions");
    else if (p->cg_mode == 2 && p->nctl != 1)
        r_fail(r, "cgroups.controllers: one expected on v2");
    return !r->bad;
}

/* --- the process steps beyond version 1 (child.c) ------------------------------------ */

#define LANDLOCK_MAX 1024 /* rule paths: the policy's and the writable binds' */

static struct stk_landlock_path *r_landlock_paths(struct rd *r, json_object *o, const char *key,
                                                  size_t *n) {
    int len;
    json_object *list = r_list(r, o, key, LANDLOCK_MAX, &len);
    struct stk_landlock_path *out = calloc((size_t)len + 1, sizeof *out);
    if (out == NULL) {
        r_fail(r, "landlock.%s: out of memory", key);
        return NULL;
    }
    for (int i = 0; i < len; i++) {
        json_object *t = r_tuple(r, list, i, 2, key);
        out[i].path = r_strv(r, r_item(t, 0), key);
        out[i].access = r_intv(r, r_item(t, 1), key);
    }
    *n = (size_t)len;
    return out;
}

static void read_landlock(struct rd *r, json_object *o, struct plan *p) {
    struct stk_landlock *ll = &p->landlock;
    const char *mode = r_str(r, o, "mode");
    if (!r->bad && strcmp(mode, "best-effort") != 0 && strcmp(mode, "required") != 0 &&
        strcmp(mode, "off") != 0)
        r_fail(r, "landlock.mode: best-effort, required or off expected, found %s", mode);
    ll->abi = (int)r_int(r, o, "abi");
    ll->enabled = strcmp(mode, "off") != 0 && ll->abi > 0; /* LandlockPlan.enabled */
    ll->handled_fs = r_int(r, o, "handled_fs");
    ll->handled_net = r_int(r, o, "handled_net");
    ll->scoped = r_int(r, o, "scoped");
    ll->paths = r_landlock_paths(r, o, "paths", &ll->npaths);
    ll->extra = r_landlock_paths(r, o, "extra", &ll->nextra);
    int nports;
    json_object *ports = r_list(r, o, "ports", LANDLOCK_MAX, &nports);
    struct stk_landlock_port *out = calloc((size_t)nports + 1, sizeof *out);
    if (out == NULL)
        r_fail(r, "landlock.ports: out of memory");
    for (int i = 0; out != NULL && i < nports; i++) {
        json_object *t = r_tuple(r, ports, i, 2, "ports");
        out[i].port = r_intv(r, r_item(t, 0), "ports");
        out[i].access = r_intv(r, r_item(t, 1), "ports");
    }
    ll->ports = out;
    ll->nports = out != NULL ? (size_t)nports : 0;
}

static void read_start_hook(struct rd *r, json_object *o, struct start_hook *h) {
    if (!r->bad && json_object_get_type(o) != json_type_object) {
        r_fail(r, "hooks.start: an object expected");
        return;
    }
    h->path = r_str(r, o, "path");
    int nargs, nenv;
    h->argv = r_vector(r, o, "args", MAX_ARGS, 0, &nargs);
    h->env = r_vector(r, o, "env", MAX_ARGS, 0, &nenv);
    json_object *t = r_field(r, o, "timeout", json_type_int, 1);
    h->timeout = t != NULL ? (int64_t)r_intv(r, t, "timeout") : -1;
}

void read_process_extras(struct rd *r, json_object *doc, struct plan *p) {
    const char *mode = r_str(r, doc, "exec_mode");
    p->exec_mode = strcmp(mode, "run") == 0 ? EXEC_RUN : strcmp(mode, "exec") == 0 ? EXEC_EXEC
                                                                                    : EXEC_CREATE;
    if (!r->bad && strcmp(mode, "create") != 0 && p->exec_mode == EXEC_CREATE)
        r_fail(r, "exec_mode: create, run or exec expected, found %s", mode);
    p->init = (uint64_t)r_bool(r, doc, "init");
    json_object *tty = r_obj(r, doc, "tty");
    json_object *size = r_field(r, tty, "console_size", json_type_array, 1);
    p->has_console = size != NULL;
    if (size != NULL) {
        if (json_object_array_length(size) != 2)
            r_fail(r, "tty.console_size: [rows, cols] expected");
        p->console.rows = (uint16_t)r_intv(r, r_item(size, 0), "console_size");
        p->console.cols = (uint16_t)r_intv(r, r_item(size, 1), "console_size");
    }
    json_object *ll = r_field(r, doc, "landlock", json_type_object, 1);
    if (ll != NULL)
        read_landlock(r, ll, p);
    p->seccomp_listener = (uint64_t)r_bool(r, r_obj(r, doc, "seccomp"), "listener");
    json_object *pids = r_field(r, doc, "pids_limit", json_type_int, 1);
    p->has_pids_limit = pids != NULL;
    p->pids_limit = pids != NULL ? (int64_t)r_intv(r, pids, "pids_limit") : 0;
    json_object *hooks = r_obj(r, doc, "hooks");
    p->pause_before_root = (uint64_t)r_bool(r, hooks, "pause_before_root");
    json_object *start = r_list(r, hooks, "start", FAST_MAX, &p->nstart_hooks);
    p->start_hooks = calloc((size_t)p->nstart_hooks + 1, sizeof *p->start_hooks);
    if (p->start_hooks == NULL)
        r_fail(r, "hooks.start: out of memory");
    for (int i = 0; i < p->nstart_hooks && !r->bad; i++)
        read_start_hook(r, r_item(start, i), &p->start_hooks[i]);
    if (!r->bad && p->seccomp_listener && p->bpf_len[0] == 0)
        r_fail(r, "seccomp.listener: no filter to listen on");
}
