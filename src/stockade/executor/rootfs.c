/* The new root: the fd-based mount API, every mount kind, pivot_root (docs/EXECUTOR.md,
 * step 7). Destinations are resolved inside the new root (openat2 RESOLVE_IN_ROOT), so a
 * symlink in the rootfs never points a mount outside of it. Mount attributes are set on
 * detached trees before they are attached: there is no window where a bind is writable
 * or suid. The error messages name the mount and the cause (users read them, the tests
 * compare them). */
#define _GNU_SOURCE
#include "executor.h"

#include <sys/sysmacros.h>

static const char *DEV_NODES[NDEV] = {"null", "zero", "full", "random", "urandom", "tty"};

static long x_open_tree(int dfd, const char *path, unsigned flags) {
    return syscall(SYS_open_tree, dfd, path, flags);
}

static int x_setattr(int fd, unsigned flags, uint64_t set, uint64_t clr) {
    struct x_mount_attr a = {set, clr, 0, 0};
    return (int)syscall(SYS_mount_setattr, fd, "", flags, &a, sizeof a);
}

/* the mount's OCI propagation option, on its detached tree (a clone: never the host's) */
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

/* fsopen + fsconfig + fsmount: a detached, configured mount. source: what mountinfo
   shows ("" or NULL: the type's name). */
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

/* O_PATH fd of `path` inside the root (symlinks cannot leave it); create: R_NONE (a missing
   path: -1, errno ENOENT, why ""), R_DIR or R_FILE (mkdir -p / touch inside the root).
   On another failure: -1 with errno, and why the runner's message when it has one
   (else "": the caller names the mount). */
int resolve(int root, const char *path, int create, char *why, size_t whylen) {
    why[0] = '\0';
    const char *rel = path;
    while (*rel == '/')
        rel++;
    if (!*rel)
        rel = ".";
    int fd = x_openat2(root, rel, O_PATH, X_RESOLVE_IN_ROOT | X_RESOLVE_NO_MAGICLINKS);
    if (fd >= 0 || errno != ENOENT || create == R_NONE)
        return fd;
    const char *slash = strrchr(rel, '/');
    const char *name = slash ? slash + 1 : rel;
    int pfd;
    if (slash != NULL) {
        char parent[PATH_MAX];
        snprintf(parent, sizeof parent, "/%.*s", (int)(slash - rel), rel);
        pfd = resolve(root, parent, R_DIR, why, whylen);
    } else {
        pfd = dup(root);
    }
    if (pfd < 0)
        return -1;
    int rc = create == R_DIR ? mkdirat(pfd, name, 0755)
                             : openat(pfd, name, O_CREAT | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0644);
    int e = errno;
    if (create == R_FILE && rc >= 0)
        close(rc);
    close(pfd);
    if (rc < 0 && e != EEXIST) {
        snprintf(why, whylen, "cannot create mountpoint %s: %s", path, strerror(e));
        errno = e;
        return -1;
    }
    fd = x_openat2(root, rel, O_PATH, X_RESOLVE_IN_ROOT | X_RESOLVE_NO_MAGICLINKS);
    if (fd < 0)
        snprintf(why, whylen, "mountpoint %s cannot be resolved inside the root "
                 "(a dangling symlink?): %s", path, strerror(errno));
    return fd;
}

/* A failed mount: "mounting KIND at DST (WHY): strerror" (the mount is named: the bare
   errno tells a user nothing). */
static void __attribute__((noreturn)) mount_fail(const struct mop *m) {
    int e = errno;
    if (m->why[0])
        child_fail("rootfs", "mounting %s at %s (%s): %s", MOUNT_KINDS[m->kind], m->dst, m->why,
                   strerror(e));
    child_fail("rootfs", "mounting %s at %s: %s", MOUNT_KINDS[m->kind], m->dst, strerror(e));
}

#define MCHECK(m, expr) do { if ((expr) < 0) mount_fail(m); } while (0)

static int is_dir_fd(int fd) {
    struct stat st;
    return fstat(fd, &st) == 0 && S_ISDIR(st.st_mode);
}

/* The mount's target, made when missing unless it is optional; -1: optional and missing. */
static int target(int root, const struct mop *m, int kind) {
    char why[PATH_MAX + 128];
    int fd = resolve(root, m->dst, m->optional ? R_NONE : kind, why, sizeof why);
    if (fd >= 0)
        return fd;
    if (why[0])
        child_fail("rootfs", "%s", why);
    if (errno != ENOENT)
        mount_fail(m);
    if (!m->optional)
        child_fail("rootfs", "mountpoint %s does not exist in the new root", m->dst);
    return -1;
}

/* A target every kind but mask and readonly needs, optional or not. */
static int target_needed(int root, const struct mop *m, int kind) {
    int fd = target(root, m, kind);
    if (fd < 0)
        child_fail("rootfs", "mountpoint %s does not exist in the new root", m->dst);
    return fd;
}

static int clone_tree(const char *path, int recursive) {
    return (int)x_open_tree(AT_FDCWD, path, X_OPEN_TREE_CLONE | O_CLOEXEC |
                                                (recursive ? X_AT_RECURSIVE : 0));
}

static void __attribute__((noreturn)) source_fail(const char *path) {
    child_fail("rootfs", "cannot open a source tree: %s (%s)", strerror(errno), path);
}

/* runner.plan.tree_key's "mount N" (N counting the root as 0) as an index of p->mounts */
static int premade_index(const char *key, int nmounts) {
    if (strncmp(key, "mount ", 6) != 0)
        return -1;
    char *end;
    long n = strtol(key + 6, &end, 10);
    return *end == '\0' && n >= 1 && n <= nmounts ? (int)n - 1 : -1;
}

/* Clone every host-side source tree while the host tree is still visible, or take the
   parent's premade (idmapped) ones. First every mount of this (new) namespace turns slave:
   a clone of a shared mount (every Docker overlay is one) would otherwise stay in its host
   peer group, and what is mounted on it would propagate back to the host (rslave, runc's
   default; the OCI rootfsPropagation is applied after pivot_root). */
void open_sources(const struct plan *p, const struct child_fds *f, struct trees *t, int *rootfd) {
    if (mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL) != 0)
        child_fail("rootfs", "making / a slave: %s", strerror(errno));
    for (int i = 0; i < MAX_MOUNTS; i++)
        t->fd[i] = -1;
    t->ndevices = 0;
    *rootfd = -1;
    for (int i = 0; i < f->ntrees; i++) {
        int at = premade_index(f->trees[i].key, p->nmounts);
        if (strcmp(f->trees[i].key, "/") == 0)
            *rootfd = f->trees[i].fd;
        else if (at >= 0)
            t->fd[at] = f->trees[i].fd;
    }
    if (p->rootfs[0] && *rootfd < 0) { /* else the jail: a tmpfs made by build_root */
        *rootfd = clone_tree(p->rootfs, 1);
        if (*rootfd < 0)
            source_fail(p->rootfs);
    }
    /* nosuid+nodev everywhere below the root; read-only when the policy says so (the
       host's /: a rootfs directory turns read-only in build_root). Set on the detached
       tree, before anyone can see it. */
    if (*rootfd >= 0 && x_setattr(*rootfd, AT_EMPTY_PATH | X_AT_RECURSIVE,
                                  SAFE | (p->root_readonly && p->root_host ? X_ATTR_RDONLY : 0), 0) != 0)
        child_fail("rootfs", "the root's attributes: %s", strerror(errno));
    for (int i = 0; i < p->nmounts; i++) {
        const struct mop *m = &p->mounts[i];
        if ((m->kind == K_BIND || m->kind == K_WRITABLE) && m->src[0] && t->fd[i] < 0) {
            t->fd[i] = clone_tree(m->src, 1);
            if (t->fd[i] < 0)
                source_fail(m->src);
        }
        if (m->kind == K_DEV && p->userns) {
            /* A user namespace cannot mknod: the OCI linux.devices are the host's nodes
               at the same paths, bound (runc's way). */
            for (int j = 0; j < m->ndata; j++) {
                char path[PATH_MAX];
                snprintf(path, sizeof path, "/dev/%s", m->data[j].key);
                if (t->ndevices == FAST_MAX)
                    child_fail("rootfs", "more than %d linux.devices", FAST_MAX);
                int fd = clone_tree(path, 0);
                if (fd < 0)
                    source_fail(path);
                t->devices[t->ndevices].name = m->data[j].key;
                t->devices[t->ndevices++].fd = fd;
            }
        }
    }
    for (int i = 0; i < NDEV; i++) {
        char path[64];
        snprintf(path, sizeof path, "/dev/%s", DEV_NODES[i]);
        t->dev[i] = clone_tree(path, 0);
        if (t->dev[i] < 0)
            source_fail(path);
    }
}

/* A fresh filesystem of fstype on the mount's target; returns a dup of its tree. */
static int fresh(int root, const struct mop *m, const char *fstype, const struct kv *opts,
                 int nopts, uint64_t attrs) {
    int tfd = target_needed(root, m, R_DIR);
    int tree = fsmount_new(fstype, m->source, opts, nopts, attrs);
    MCHECK(m, tree);
    MCHECK(m, x_propagate(tree, m->propagation));
    int keep = dup(tree);
    MCHECK(m, keep);
    MCHECK(m, x_attach(tree, tfd));
    close(tfd);
    return keep;
}

static int beneath(int dirfd, const char *name, uint64_t flags) {
    return x_openat2(dirfd, name, O_PATH | flags, X_RESOLVE_BENEATH | X_RESOLVE_NO_SYMLINKS);
}

/* /dev: a failed mount call with ENOENT says "/dev: ..." (the text users and the tests
   know); any other failure names the mount. */
static void __attribute__((noreturn)) dev_fail(const struct mop *m) {
    if (errno == ENOENT)
        child_fail("rootfs", "/dev: %s", strerror(errno));
    mount_fail(m);
}

#define DCHECK(m, expr) do { if ((expr) < 0) dev_fail(m); } while (0)

static int take_device(struct trees *t, const char *name) {
    for (int i = 0; i < t->ndevices; i++)
        if (t->devices[i].fd >= 0 && strcmp(t->devices[i].name, name) == 0) {
            int fd = t->devices[i].fd;
            t->devices[i].fd = -1;
            return fd;
        }
    return -1;
}

static void __attribute__((noreturn)) device_fail(const char *name, int err) {
    child_fail("rootfs", "linux.devices /dev/%s: %s", name, strerror(err));
}

/* One OCI linux.devices node in the new /dev: made (mknod) with its mode and owner, or,
   with `tree` (a user namespace), the host's node bound onto an empty file. */
static void device(int dev, const char *name, const char *spec, int tree) {
    char kind[2];
    unsigned major, minor, mode, uid, gid;
    char extra;
    if (sscanf(spec, "%1s %u %u %u %u %u %c", kind, &major, &minor, &mode, &uid, &gid, &extra) != 6)
        child_fail("rootfs", "linux.devices /dev/%s: %s is not TYPE MAJOR MINOR MODE UID GID",
                   name, spec);
    char rel[PATH_MAX];
    snprintf(rel, sizeof rel, "%s", name);
    char *base = strrchr(rel, '/');
    int parent = dup(dev);
    if (parent < 0)
        device_fail(name, errno);
    if (base != NULL) { /* nested names: net/tun */
        *base++ = '\0';
        for (char *part = strtok(rel, "/"); part != NULL; part = strtok(NULL, "/")) {
            if (mkdirat(parent, part, 0755) != 0 && errno != EEXIST)
                device_fail(name, errno);
            int sub = beneath(parent, part, O_DIRECTORY);
            if (sub < 0)
                device_fail(name, errno);
            close(parent);
            parent = sub;
        }
    } else {
        base = rel;
    }
    if (tree >= 0) {
        int fd = openat(parent, base, O_CREAT | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0644);
        if (fd < 0)
            device_fail(name, errno);
        close(fd);
        int tg = beneath(parent, base, 0);
        if (tg < 0 || x_setattr(tree, AT_EMPTY_PATH, X_ATTR_NOSUID | X_ATTR_NOEXEC, 0) != 0 ||
            x_attach(tree, tg) != 0)
            device_fail(name, errno);
        close(tg);
        close(parent);
        return;
    }
    static const char types[] = "cbp"; /* OCI device types, as S_IF* below */
    static const mode_t fmts[] = {S_IFCHR, S_IFBLK, S_IFIFO};
    const char *at = kind[0] ? strchr(types, kind[0]) : NULL;
    if (at == NULL)
        child_fail("rootfs", "linux.devices /dev/%s: %s is not TYPE MAJOR MINOR MODE UID GID",
                   name, spec);
    if (mknodat(parent, base, fmts[at - types] | 0600, makedev(major, minor)) != 0 ||
        fchownat(parent, base, (uid_t)uid, (gid_t)gid, AT_SYMLINK_NOFOLLOW) != 0 ||
        fchmodat(parent, base, (mode_t)mode, 0) != 0) /* after mknod: the umask is not applied */
        device_fail(name, errno);
    close(parent);
}

static void build_dev(int root, const struct mop *m, struct trees *t) {
    static const struct kv devopts[] = {{"mode", "0755"}, {"size", "65536"}};
    int tfd = target_needed(root, m, R_DIR);
    int dev = fsmount_new("tmpfs", m->source, devopts, 2, X_ATTR_NOSUID | X_ATTR_NOEXEC);
    DCHECK(m, dev);
    DCHECK(m, x_propagate(dev, m->propagation));
    int tree = dup(dev);
    MCHECK(m, tree);
    DCHECK(m, x_attach(tree, tfd));
    close(tfd);
    for (int i = 0; i < NDEV; i++) {
        int fd = openat(dev, DEV_NODES[i], O_CREAT | O_WRONLY | O_CLOEXEC, 0666);
        MCHECK(m, fd);
        close(fd);
        int tg = beneath(dev, DEV_NODES[i], 0);
        DCHECK(m, tg);
        DCHECK(m, x_setattr(t->dev[i], AT_EMPTY_PATH, X_ATTR_NOSUID | X_ATTR_NOEXEC, 0));
        DCHECK(m, x_attach(t->dev[i], tg));
        t->dev[i] = -1;
        close(tg);
    }
    for (int i = 0; i < m->ndata; i++)
        device(dev, m->data[i].key, m->data[i].value ? m->data[i].value : "",
               take_device(t, m->data[i].key));
    /* mqueue: an empty mountpoint for an OCI bundle's /dev/mqueue (this /dev turns
       read-only below, so it cannot be created later) */
    MCHECK(m, mkdirat(dev, "pts", 0755));
    MCHECK(m, mkdirat(dev, "shm", 01777));
    MCHECK(m, mkdirat(dev, "mqueue", 0755));
    static const struct kv ptsopts[] = {{"newinstance", NULL}, {"ptmxmode", "0666"}, {"mode", "0620"}};
    int pts = beneath(dev, "pts", 0);
    DCHECK(m, pts);
    tree = fsmount_new("devpts", NULL, ptsopts, 3, X_ATTR_NOSUID | X_ATTR_NOEXEC);
    DCHECK(m, tree);
    DCHECK(m, x_attach(tree, pts));
    close(pts);
    /* "shm": the source name runc's and Docker's specs give /dev/shm */
    static const struct kv shmopts[] = {{"mode", "1777"}};
    int shm = beneath(dev, "shm", 0);
    DCHECK(m, shm);
    tree = fsmount_new("tmpfs", "shm", shmopts, 1, SAFE | X_ATTR_NOEXEC);
    DCHECK(m, tree);
    DCHECK(m, x_attach(tree, shm));
    close(shm);
    static const char *links[][2] = {{"ptmx", "pts/ptmx"}, {"fd", "/proc/self/fd"},
        {"stdin", "/proc/self/fd/0"}, {"stdout", "/proc/self/fd/1"}, {"stderr", "/proc/self/fd/2"}};
    for (int i = 0; i < 5; i++)
        MCHECK(m, symlinkat(links[i][1], dev, links[i][0]));
    /* no new files in /dev once it is populated (writes to the nodes still work) */
    DCHECK(m, x_setattr(dev, AT_EMPTY_PATH, X_ATTR_RDONLY, 0));
    close(dev);
}

/* tmpfs: mode=1777 and the mount's data (the SELinux context= of the policy's writable
   type, when it has one); a data key already given replaces it, in its place. */
static void build_tmpfs(int root, const struct mop *m) {
    struct kv opts[FAST_MAX + 1] = {{"mode", "1777"}};
    int n = 1;
    for (int i = 0; i < m->ndata; i++) {
        int at = n;
        for (int j = 0; j < n; j++)
            if (strcmp(opts[j].key, m->data[i].key) == 0)
                at = j;
        opts[at] = m->data[i];
        n += at == n;
    }
    close(fresh(root, m, "tmpfs", opts, n, SAFE));
}

/* A symlink (to m->src) or a file (data's content) in the jail's own tmpfs. */
static void make_entry(int root, const struct mop *m) {
    char dir[PATH_MAX], why[PATH_MAX + 128];
    const char *slash = strrchr(m->dst, '/');
    const char *name = slash ? slash + 1 : m->dst;
    snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - m->dst) : 0, m->dst); /* "": / */
    int parent = resolve(root, dir, R_DIR, why, sizeof why);
    if (parent < 0 && why[0])
        child_fail("rootfs", "%s", why);
    MCHECK(m, parent);
    if (m->kind == K_SYMLINK) {
        MCHECK(m, symlinkat(m->src, parent, name));
        close(parent);
        return;
    }
    const char *content = NULL;
    for (int i = 0; i < m->ndata; i++)
        if (strcmp(m->data[i].key, "content") == 0)
            content = m->data[i].value;
    if (content == NULL)
        child_fail("rootfs", "mounting file at %s: no content", m->dst);
    int fd = openat(parent, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    MCHECK(m, fd);
    for (size_t off = 0, len = strlen(content); off < len;) {
        ssize_t w = write(fd, content + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        MCHECK(m, (int)w);
        off += (size_t)w;
    }
    close(fd);
    close(parent);
}

static void build_mask(int root, const struct mop *m, int *empty) {
    int tfd = target(root, m, R_DIR);
    if (tfd < 0)
        return; /* nothing there, nothing to hide */
    int tree;
    if (is_dir_fd(tfd)) {
        /* One empty read-only tmpfs for every masked directory: the first is mounted
           fresh, the others are clones of it (cheaper than a superblock each). The
           template is always attached before its fd is closed: closing a detached mount
           unmounts it, which waits for an expedited RCU grace period. */
        if (*empty < 0) {
            static const struct kv opts[] = {{"mode", "0555"}, {"size", "4096"}};
            tree = fsmount_new("tmpfs", NULL, opts, 2, SAFE | X_ATTR_NOEXEC | X_ATTR_RDONLY);
            MCHECK(m, tree);
            *empty = dup(tree);
            MCHECK(m, *empty);
        } else {
            tree = (int)x_open_tree(*empty, "", X_OPEN_TREE_CLONE | O_CLOEXEC | AT_EMPTY_PATH);
        }
    } else {
        char why[PATH_MAX + 128];
        int null = resolve(root, "/dev/null", R_NONE, why, sizeof why);
        if (null < 0 && errno == ENOENT)
            child_fail("rootfs", "/dev/null is missing in the new root");
        MCHECK(m, null);
        tree = (int)x_open_tree(null, "", X_OPEN_TREE_CLONE | O_CLOEXEC | AT_EMPTY_PATH);
        close(null);
    }
    MCHECK(m, tree);
    MCHECK(m, x_attach(tree, tfd));
    close(tfd);
}

/* The path itself, cloned and re-attached with other attributes (readonly, writable ""). */
static void rebind(int root, const struct mop *m, uint64_t set, uint64_t clr) {
    int tfd = m->kind == K_READONLY ? target(root, m, R_DIR) : target_needed(root, m, R_DIR);
    if (tfd < 0)
        return;
    int tree = (int)x_open_tree(tfd, "", X_OPEN_TREE_CLONE | O_CLOEXEC | AT_EMPTY_PATH | X_AT_RECURSIVE);
    MCHECK(m, tree);
    MCHECK(m, x_setattr(tree, AT_EMPTY_PATH | X_AT_RECURSIVE, set, clr));
    MCHECK(m, x_attach(tree, tfd));
    close(tfd);
}

/* A host tree (bind, writable with a source): its own clone, or the parent's premade one. */
static void bind_tree(int root, const struct mop *m, int tree) {
    if (tree < 0) {
        errno = EBADF;
        mount_fail(m);
    }
    MCHECK(m, x_setattr(tree, AT_EMPTY_PATH | X_AT_RECURSIVE, SAFE | (m->readonly ? X_ATTR_RDONLY : 0),
                        m->readonly ? 0 : X_ATTR_RDONLY));
    MCHECK(m, x_propagate(tree, m->propagation));
    int tfd = target_needed(root, m, is_dir_fd(tree) ? R_DIR : R_FILE);
    MCHECK(m, x_attach(tree, tfd));
    close(tfd);
}

static void apply(int root, const struct mop *m, int source, struct trees *t, int *empty) {
    switch (m->kind) {
    case K_SYMLINK: /* the jail's /bin -> usr/bin, its /etc/hosts */
    case K_FILE:
        make_entry(root, m);
        break;
    case K_PROC:
        close(fresh(root, m, "proc", NULL, 0, SAFE | X_ATTR_NOEXEC));
        break;
    case K_SYSFS:
        close(fresh(root, m, "sysfs", NULL, 0, SAFE | X_ATTR_NOEXEC | X_ATTR_RDONLY));
        break;
    case K_TMPFS:
        build_tmpfs(root, m);
        break;
    case K_DEV:
        build_dev(root, m, t);
        break;
    case K_FS:
        close(fresh(root, m, m->fstype, m->data, m->ndata, SAFE | m->attrs));
        break;
    case K_WRITABLE:
        if (!m->src[0]) { /* the path inside the root itself, made writable */
            rebind(root, m, SAFE, X_ATTR_RDONLY);
            break;
        }
        bind_tree(root, m, source);
        break;
    case K_BIND:
        bind_tree(root, m, source);
        break;
    case K_READONLY:
        rebind(root, m, SAFE | X_ATTR_RDONLY, 0);
        break;
    case K_MASK:
        build_mask(root, m, empty);
        break;
    default:
        child_fail("rootfs", "unknown mount kind %llu", (unsigned long long)m->kind);
    }
}

/* Attach the new root at /tmp (in our private mount namespace), mount everything into it,
   pivot, detach the old root. Nothing done here propagates back to the host: open_sources
   made the namespace rslave before cloning anything. */
void build_root(const struct plan *p, struct trees *t, int roottree) {
    int staging = open("/tmp", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (staging < 0)
        child_fail("rootfs", "/tmp: %s", strerror(errno));
    if (roottree < 0) {
        /* The jail's root: a fresh tmpfs, made now (after the id maps) so that it belongs
           to root inside, who makes its mountpoints; read-only once they are all made. */
        static const struct kv o[] = {{"mode", "0755"}};
        roottree = fsmount_new("tmpfs", NULL, o, 1, SAFE);
        if (roottree < 0)
            child_fail("rootfs", "the jail's root tmpfs: %s", strerror(errno));
    }
    if (x_attach(roottree, staging) != 0)
        child_fail("rootfs", "attaching the new root: %s", strerror(errno));
    close(staging);
    int root = open("/tmp", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (root < 0)
        child_fail("rootfs", "the new root: %s", strerror(errno));
    /* a rootfs directory: read-only below it all (the host's / was made so in
       open_sources; the jail's root turns read-only last) */
    if (p->root_readonly && !p->root_host && !p->root_jail &&
        x_setattr(root, AT_EMPTY_PATH | X_AT_RECURSIVE, X_ATTR_RDONLY, 0) != 0)
        child_fail("rootfs", "the new root read-only: %s", strerror(errno));
    int empty = -1; /* the first masking tmpfs (attached), cloned for the others */
    for (int i = 0; i < p->nmounts; i++) {
        const struct mop *m = &p->mounts[i];
        int source = -1; /* a host tree's own clone (binds): the mount takes it */
        if (m->kind == K_BIND || m->kind == K_WRITABLE) {
            source = t->fd[i];
            t->fd[i] = -1;
        }
        apply(root, m, source, t, &empty);
    }
    if (empty >= 0)
        close(empty);
    /* the jail: the root tmpfs only turns read-only, not /tmp, not the binds */
    if (p->root_jail && p->root_readonly && x_setattr(root, AT_EMPTY_PATH, X_ATTR_RDONLY, 0) != 0)
        child_fail("rootfs", "the jail's root read-only: %s", strerror(errno));
    if (fchdir(root) != 0)
        child_fail("rootfs", "the new root: %s", strerror(errno));
    close(root);
    for (int i = 0; i < MAX_MOUNTS; i++) /* trees no mount took */
        if (t->fd[i] >= 0)
            close(t->fd[i]);
    for (int i = 0; i < t->ndevices; i++)
        if (t->devices[i].fd >= 0)
            close(t->devices[i].fd);
    for (int i = 0; i < NDEV; i++)
        if (t->dev[i] >= 0)
            close(t->dev[i]);
    /* pivot_root(".", "."): the old root ends up stacked on the new one and is detached
       at once; no directory of the host stays reachable (runc's approach). Its detach
       must not propagate: rslave first, on the old root's tree only (through an fd of it:
       "." would name the new root and undo the mounts' own propagation options). */
    int old_root = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (old_root < 0 || syscall(SYS_pivot_root, ".", ".") != 0 || fchdir(old_root) != 0 ||
        mount(NULL, ".", NULL, MS_REC | MS_SLAVE, NULL) != 0 || umount2(".", MNT_DETACH) != 0)
        child_fail("rootfs", "pivot_root: %s", strerror(errno));
    close(old_root);
    if (chdir("/") != 0)
        child_fail("rootfs", "/: %s", strerror(errno));
    /* OCI rootfsPropagation, on the new root (runc's order: after pivot_root). Every mount
       here is a slave of the host's or private already, so even (r)shared only shares
       within the container: nothing mounted here ever reaches the host. */
    if (p->root_propagation && mount(NULL, "/", NULL, p->root_propagation, NULL) != 0)
        child_fail("rootfs", "rootfsPropagation: %s", strerror(errno));
}

/* Runtime side, before the clone, with the runtime's credentials: the mountpoints a bare
   rootfs directory lacks (like runc), resolved inside the rootfs, never through it. Mounts
   below a fresh filesystem (dev, tmpfs, fs) are made inside it later, not here; the host's
   / (and the jail, whose root is made inside) get none. */
int prepare_mountpoints(const struct plan *p, char *why, size_t whylen) {
    if (p->root_host || p->root_jail || !p->rootfs[0])
        return 0;
    int rfd = open(p->rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (rfd < 0) {
        snprintf(why, whylen, "rootfs %s: %s", p->rootfs, strerror(errno));
        return -1;
    }
    int nfresh = 0;
    const char *freshs[MAX_MOUNTS];
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
        int made = mo->kind == K_PROC || mo->kind == K_DEV || mo->kind == K_SYSFS ||
                   mo->kind == K_TMPFS || mo->kind == K_BIND || mo->kind == K_WRITABLE ||
                   mo->kind == K_FS;
        if (mo->optional || !made)
            continue;
        if (mo->kind == K_WRITABLE && !mo->src[0])
            continue; /* re-bound in place: it must exist, it is not created */
        struct stat sst;
        int kind = (mo->kind == K_BIND && !(stat(mo->src, &sst) == 0 && S_ISDIR(sst.st_mode)))
                       ? R_FILE : R_DIR;
        char rwhy[PATH_MAX + 128];
        int fd = resolve(rfd, mo->dst, kind, rwhy, sizeof rwhy);
        if (fd < 0) {
            if (rwhy[0])
                snprintf(why, whylen, "%s", rwhy);
            else
                snprintf(why, whylen, "mountpoint %s: %s", mo->dst, strerror(errno));
            close(rfd);
            return -1;
        }
        close(fd);
    }
    close(rfd);
    return 0;
}
