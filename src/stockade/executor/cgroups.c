/* The container's cgroups (docs/EXECUTOR.md, step 3): their directories, made below the
 * cgroup mounts without following a symlink, the plan's limits, the v2 device program.
 * The runtime records each directory in its state around these calls (oci/fastexec.c). */
#define _GNU_SOURCE
#include "executor.h"

/* Own cgroup path of this process in a v1 controller, or v2 for "" (/proc/self/cgroup). */
int own_cgroup(const char *ctrl, char *out, size_t n) {
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

/* A control file written as the limits are: never created (a missing file is a knob
   this kernel lacks). 0, or -1 with why: the file and what the kernel said. */
static int cg_write(const char *path, const char *value, char *why, size_t whylen) {
    int fd = open(path, O_WRONLY | O_CLOEXEC | O_TRUNC);
    if (fd < 0)
        return snprintf(why, whylen, "%s: %s", path, strerror(errno)), -1;
    size_t len = strlen(value);
    ssize_t n = write(fd, value, len);
    int err = errno;
    close(fd);
    if (n == (ssize_t)len)
        return 0;
    snprintf(why, whylen, "%s: kernel refused '%s': %s", path, value,
             strerror(n < 0 ? err : EIO));
    return -1;
}

/* A fresh v1 cpuset directory takes no task until it has cpus and mems: its parent's. */
static int inherit_cpuset(const char *dir, char *why, size_t whylen) {
    char parent[PATH_MAX];
    snprintf(parent, sizeof parent, "%s", dir);
    char *slash = strrchr(parent, '/');
    if (slash == NULL)
        return 0;
    *slash = '\0';
    static const char *const files[] = {"cpuset.cpus", "cpuset.mems"};
    for (int i = 0; i < 2; i++) {
        char from[PATH_MAX + 16], to[PATH_MAX + 16], value[4096];
        snprintf(from, sizeof from, "%s/%s", parent, files[i]);
        snprintf(to, sizeof to, "%s/%s", dir, files[i]);
        ssize_t n = read_text(from, value, sizeof value);
        if (n < 0)
            return snprintf(why, whylen, "%s: %s", from, strerror(errno)), -1;
        while (n > 0 && (value[n - 1] == '\n' || value[n - 1] == ' '))
            value[--n] = '\0';
        if (cg_write(to, value, why, whylen) != 0)
            return -1;
    }
    return 0;
}

/* mkdir -p base/rel one component at a time through directory fds: a component that is
   a symlink, `.` or `..`, or on another filesystem than base (a mount) is an error, so
   the directory is made inside base's hierarchy or not at all. An existing last
   component is an error unless exist_ok (a cgroup that is someone else's would be
   killed by our delete). cpuset: each directory made gets its parent's cpus and mems.
   0, or -1 with why (and the directories it made removed again). */
int mkdir_below(const char *base, const char *rel, int exist_ok, int cpuset, char *why,
                size_t whylen) {
    static char made[FAST_MAX][PATH_MAX];
    int nmade = 0, ok = 0, ncomp = 0;
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s", base);
    int fd = open(base, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        snprintf(why, whylen, "%s: %s", base, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    dev_t dev = st.st_dev;
    for (const char *c = rel; *c;) {
        while (*c == '/')
            c++;
        if (!*c)
            break;
        size_t n = strcspn(c, "/");
        const char *next = c + n;
        while (*next == '/')
            next++;
        int last = *next == '\0';
        char name[256];
        if (n >= sizeof name || (n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.')) {
            snprintf(why, whylen, "%s: '%s' is not a path below it", base, rel);
            goto out;
        }
        memcpy(name, c, n);
        name[n] = '\0';
        ncomp++;
        size_t at = strlen(path);
        if (at + 1 + n >= sizeof path) {
            snprintf(why, whylen, "%s/%s: path too long", base, rel);
            goto out;
        }
        snprintf(path + at, sizeof path - at, "/%s", name);
        if (mkdirat(fd, name, 0755) == 0) {
            if (nmade < FAST_MAX)
                snprintf(made[nmade++], PATH_MAX, "%s", path);
            if (cpuset && inherit_cpuset(path, why, whylen) != 0)
                goto out;
        } else if (errno == EEXIST) {
            if (last && !exist_ok) {
                snprintf(why, whylen, "cannot create %s: it exists already", path);
                goto out;
            }
        } else {
            snprintf(why, whylen, "cannot create %s: %s", path, strerror(errno));
            goto out;
        }
        int sub = openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (sub < 0) {
            snprintf(why, whylen, "%s: not a directory of the hierarchy (%s)", path,
                     strerror(errno));
            goto out;
        }
        close(fd);
        fd = sub;
        if (fstat(fd, &st) != 0 || st.st_dev != dev) {
            snprintf(why, whylen, "%s: on another filesystem than %s", path, base);
            goto out;
        }
        c = next;
    }
    if (ncomp == 0)
        snprintf(why, whylen, "%s: '%s' is not a path below it", base, rel);
    else
        ok = 1;
out:
    close(fd);
    if (!ok)
        for (int k = nmade - 1; k >= 0; k--)
            rmdir(made[k]);
    return ok ? 0 : -1;
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
static int enable_controllers(const struct plan *p, const char *dir, char *why, size_t whylen) {
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
        return 0;
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/cgroup.subtree_control", dir);
    if (cg_write(path, want, why, whylen) == 0)
        return 0;
    size_t at = strlen(why);
    snprintf(why + at, whylen - at, " (a cgroup v2 parent with processes cannot delegate "
             "controllers: run stockade from a delegated leaf cgroup)");
    return -1;
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

/* The directories of the plan's cgroups: rel (below each base), bases[i] and ctldir[i]
   for each controller. 0, or -1 with why filled. */
int cgroup_paths(const struct plan *p, const char *id, char *rel, size_t rellen,
                 char bases[][PATH_MAX], char ctldir[][PATH_MAX], char *why, size_t whylen) {
    if (p->cg_leaf[0])
        snprintf(rel, rellen, "%s", p->cg_leaf);
    else if (snprintf(rel, rellen, "stockade/%s", id) >= (int)rellen)
        return snprintf(why, whylen, "cgroup path too long"), -1;
    for (int i = 0; i < p->nctl; i++) {
        struct statfs sfs;
        long magic = p->cg_mode == 2 ? CGROUP2_SUPER_MAGIC : CGROUP_SUPER_MAGIC;
        if (statfs(p->ctl[i].mount, &sfs) != 0 || sfs.f_type != magic)
            return snprintf(why, whylen, "%s is not the cgroup mount it was", p->ctl[i].mount), -1;
        char own[PATH_MAX] = "/";
        if (!p->ctl[i].absolute && own_cgroup(p->ctl[i].name, own, sizeof own) != 0)
            return snprintf(why, whylen, "own %s cgroup unknown", p->ctl[i].name), -1;
        const char *o = own;
        while (*o == '/')
            o++;
        if (snprintf(bases[i], PATH_MAX, "%s%s%s", p->ctl[i].mount, *o ? "/" : "", o) >= PATH_MAX ||
            snprintf(ctldir[i], PATH_MAX, "%s/%s", bases[i], rel) >= PATH_MAX)
            return snprintf(why, whylen, "cgroup path too long"), -1;
    }
    return 0;
}

/* One cgroup directory (v2, default layout: stockade/ with the controllers enabled).
   cpuset: a v1 cpuset directory (each one made inherits its parent's cpus and mems). */
int cgroup_make(const struct plan *p, const char *base, const char *rel, const char *ctldir,
                int cpuset, char *why, size_t whylen) {
    if (p->cg_mode == 2 && !p->cg_leaf[0]) {
        char parent[PATH_MAX + 16];
        snprintf(parent, sizeof parent, "%s/stockade", base);
        if (mkdir_below(base, "stockade", 1, 0, why, whylen) != 0 ||
            enable_controllers(p, base, why, whylen) != 0 ||
            enable_controllers(p, parent, why, whylen) != 0)
            return -1;
        if (mkdir(ctldir, 0755) != 0 && errno != EEXIST) /* EEXIST: a pre-laid-out tree */
            return snprintf(why, whylen, "cannot create %s: %s", ctldir, strerror(errno)), -1;
        return 0;
    }
    return mkdir_below(base, rel, 0, cpuset, why, whylen);
}

/* One limit into dir (v2: its controller checked first). -1 with why; a limit the host
   cannot apply and the plan says to skip leaves a note instead. */
static int write_limit(const struct plan *p, const char *dir, const struct cgwrite *w,
                       struct cg_notes *notes, char *why, size_t whylen) {
    char path[PATH_MAX + 256];
    int missing = 0;
    if (p->cg_mode == 2 && w->ctrl[0]) {
        char avail[4096];
        read_small(dir, "cgroup.controllers", avail, sizeof avail);
        missing = !has_word(avail, w->ctrl);
        if (missing && w->absent == ABSENT_ERROR)
            return snprintf(why, whylen, "resources.%s asked but the %s controller is not "
                            "available in %s", w->key, w->ctrl, dir), -1;
    }
    snprintf(path, sizeof path, "%s/%s", dir, w->file);
    if (!missing && w->absent != ABSENT_ERROR && access(path, F_OK) != 0)
        missing = 1;
    if (missing && w->absent == ABSENT_FAIL)
        return snprintf(why, whylen, "%s", w->absent_text), -1;
    if (missing) {
        if (notes != NULL && notes->n < FAST_MAX)
            snprintf(notes->text[notes->n++], sizeof notes->text[0], "%s", w->absent_text);
        return 0;
    }
    return cg_write(path, w->value, why, whylen);
}

/* The plan's limits written, the v2 device program attached. *cgfd: the v2 directory
   (for clone3), -1 for v1 (the child joins through `tasks`). 0, or -1 with why. */
int cgroup_limit(const struct plan *p, char ctldir[][PATH_MAX], int *cgfd, struct cg_notes *notes,
                 char *why, size_t whylen) {
    *cgfd = -1;
    if (p->cg_mode == 1) {
        for (int i = 0; i < p->ncgw; i++) {
            int ci = -1;
            for (int j = 0; j < p->nctl; j++)
                if (strcmp(p->ctl[j].name, p->cgw[i].ctrl) == 0)
                    ci = j;
            if (ci < 0)
                return snprintf(why, whylen, "%s rules asked but no %s cgroup was created",
                                p->cgw[i].ctrl, p->cgw[i].ctrl), -1;
            if (write_limit(p, ctldir[ci], &p->cgw[i], notes, why, whylen) != 0)
                return -1;
        }
        return 0;
    }
    for (int i = 0; i < p->ncgw; i++)
        if (write_limit(p, ctldir[0], &p->cgw[i], notes, why, whylen) != 0)
            return -1;
    int fd = open(ctldir[0], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return snprintf(why, whylen, "%s: %s", ctldir[0], strerror(errno)), -1;
    if (p->devprog_len && attach_device_program(fd, p->devprog, p->devprog_len) != 0) {
        snprintf(why, whylen, "device rules (eBPF program on %s): [Errno %d] %s", ctldir[0],
                 errno, strerror(errno));
        close(fd);
        return -1;
    }
    *cgfd = fd;
    return 0;
}
