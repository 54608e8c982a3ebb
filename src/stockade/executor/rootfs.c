/* The new root: the fd-based mount API, every mount kind, pivot_root (docs/EXECUTOR.md,
 * step 7). Destinations are resolved inside the new root (openat2 RESOLVE_IN_ROOT), so a
 * symlink in the rootfs never points a mount outside of it. */
#define _GNU_SOURCE
#include "executor.h"

static const char *DEV_NODES[NDEV] = {"null", "zero", "full", "random", "urandom", "tty"};

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

int x_openat2(int dfd, const char *path, uint64_t flags, uint64_t resolve) {
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
int resolve(int root, const char *path, int create) {
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


void open_sources(const struct plan *p, struct trees *t, int *rootfd) {
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
void build_root(const struct plan *p, struct trees *t, int roottree) {
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

/* Runtime side, before the clone, with the runtime's credentials: the mountpoints a bare
   rootfs lacks (like runc), resolved inside the rootfs. Mounts below a fresh filesystem
   (dev, tmpfs, fs) are made inside it later, not here. */
int prepare_mountpoints(const struct plan *p, char *why, size_t whylen) {
    int rfd = open(p->rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (rfd < 0) {
        snprintf(why, whylen, "rootfs %s: %s", p->rootfs, strerror(errno));
        return -1;
    }
    int nfresh = 0;
    const char *freshs[FAST_MAX];
    for (int i = 0; i < p->nmounts; i++) {
        const struct mop *mo = &p->mounts[i];
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
            continue; /* re-bound in place: it must exist, it is not created */
        struct stat sst;
        int kind = (mo->kind == K_BIND && !(stat(mo->src, &sst) == 0 && S_ISDIR(sst.st_mode))) ? 2 : 1;
        int fd = resolve(rfd, mo->dst, kind);
        if (fd < 0) {
            snprintf(why, whylen, "mountpoint %s: %s", mo->dst, strerror(errno));
            close(rfd);
            return -1;
        }
        close(fd);
    }
    close(rfd);
    return 0;
}
