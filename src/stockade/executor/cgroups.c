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

/* cgroupfs.make_below: mkdir -p base/rel one component at a time through directory
   fds, never following a symlink, taking `.`/`..` or leaving base's filesystem; an
   existing last component is an error unless exist_ok. 0, or -1 with errno (and the
   directories it made removed again). */
int mkdir_below(const char *base, const char *rel, int exist_ok) {
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
    if (write_text(path, want) == 0)
        return 0;
    snprintf(why, whylen, "%s: %s", path, strerror(errno));
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

/* One cgroup directory (v2, default layout: stockade/ with the controllers enabled). */
int cgroup_make(const struct plan *p, const char *base, const char *rel, const char *ctldir,
                char *why, size_t whylen) {
    if (p->cg_mode == 2 && !p->cg_leaf[0]) { /* V2Cgroup.create, default layout */
        char parent[PATH_MAX + 16];
        snprintf(parent, sizeof parent, "%s/stockade", base);
        if (mkdir_below(base, "stockade", 1) != 0)
            return snprintf(why, whylen, "cannot create %s: %s", parent, strerror(errno)), -1;
        if (enable_controllers(p, base, why, whylen) != 0 ||
            enable_controllers(p, parent, why, whylen) != 0)
            return -1;
        if (mkdir(ctldir, 0755) != 0 && errno != EEXIST)
            return snprintf(why, whylen, "cannot create %s: %s", ctldir, strerror(errno)), -1;
    } else if (mkdir_below(base, rel, 0) != 0) {
        return snprintf(why, whylen, "cannot create %s: %s", ctldir, strerror(errno)), -1;
    }
    return 0;
}

static int write_limit(const char *dir, const struct cgwrite *w, char *why, size_t whylen) {
    char path[PATH_MAX + 256];
    snprintf(path, sizeof path, "%s/%s", dir, w->file);
    if (write_text(path, w->value) == 0)
        return 0;
    snprintf(why, whylen, "%s: %s", path, strerror(errno)); /* the fallback names the controller */
    return -1;
}

/* The plan's limits written, the v2 device program attached. *cgfd: the v2 directory
   (for clone3), -1 for v1 (the child joins through `tasks`). 0, or -1 with why. */
int cgroup_limit(const struct plan *p, char ctldir[][PATH_MAX], int *cgfd, char *why, size_t whylen) {
    *cgfd = -1;
    if (p->cg_mode == 1) {
        for (int i = 0; i < p->ncgw; i++) {
            int ci = -1;
            for (int j = 0; j < p->nctl; j++)
                if (strcmp(p->ctl[j].name, p->cgw[i].ctrl) == 0)
                    ci = j;
            if (ci < 0)
                return snprintf(why, whylen, "no %s cgroup", p->cgw[i].ctrl), -1;
            if (write_limit(ctldir[ci], &p->cgw[i], why, whylen) != 0)
                return -1;
        }
        return 0;
    }
    for (int i = 0; i < p->ncgw; i++)
        if (write_limit(ctldir[0], &p->cgw[i], why, whylen) != 0)
            return -1;
    int fd = open(ctldir[0], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return snprintf(why, whylen, "%s: %s", ctldir[0], strerror(errno)), -1;
    if (p->devprog_len && attach_device_program(fd, p->devprog, p->devprog_len) != 0) {
        snprintf(why, whylen, "device rules (eBPF program on %s): %s", ctldir[0], strerror(errno));
        close(fd);
        return -1;
    }
    *cgfd = fd;
    return 0;
}
