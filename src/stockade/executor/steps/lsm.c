/* a. The AppArmor / SELinux exec label.
 *
 * The label is a task attribute taking effect at the next execve, so the init may set it
 * and the payload's fork inherit it. It is written through a procfs fd that is verified,
 * not through a path: a rootfs that fakes /proc (a bind-mounted tmpfs, CVE-2019-16884
 * class) would otherwise swallow the label and the payload would run unconfined.
 * thread-self, not the pid: in a new pid namespace our pid names another process of the
 * host's procfs until the new /proc is mounted.
 */
#define _GNU_SOURCE
#include "steps.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#define X_PROC_SUPER_MAGIC 0x9FA0
#define X_RESOLVE_NO_XDEV 0x01
#define X_RESOLVE_BENEATH 0x08

struct x_open_how { uint64_t flags, mode, resolve; }; /* <linux/openat2.h> clashes with glibc */

static int on_procfs(int fd) {
    struct statfs st;
    return fstatfs(fd, &st) == 0 && st.f_type == X_PROC_SUPER_MAGIC;
}

/* The first candidate that opens, beneath <proc> and on the same mount. */
static int open_attr(const char *proc, const char *const *candidates, size_t n,
                     struct stk_result *r) {
    int dir = open(proc, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0)
        return stk_fail(r, "lsm", errno, "cannot open %s: %s", proc, strerror(errno));
    if (!on_procfs(dir)) {
        close(dir);
        return stk_fail(r, "lsm", 0, "/proc is not procfs");
    }
    int last = 0;
    for (size_t i = 0; i < n; i++) {
        struct x_open_how how = {O_WRONLY | O_CLOEXEC, 0, X_RESOLVE_BENEATH | X_RESOLVE_NO_XDEV};
        int fd = (int)syscall(SYS_openat2, dir, candidates[i], &how, sizeof how);
        if (fd < 0) {
            last = errno;
            continue;
        }
        close(dir);
        if (!on_procfs(fd)) {
            close(fd);
            return stk_fail(r, "lsm", 0, "/proc/%s is not on procfs", candidates[i]);
        }
        return fd;
    }
    close(dir);
    return stk_fail(r, "lsm", last, "cannot open %s: %s", candidates[n - 1],
                    last ? strerror(last) : "?");
}

/* One write: the kernel takes a label whole or refuses it. A short count is refused
 * too (the label would be cut, so fail closed). */
static int write_label(int fd, const char *data, const char *what, const char *name,
                       struct stk_result *r) {
    size_t len = strlen(data);
    ssize_t n = write(fd, data, len);
    int err = errno;
    close(fd);
    if (n < 0)
        return stk_fail(r, "lsm", err, "%s %s: %s", what, name, strerror(err));
    if ((size_t)n != len)
        return stk_fail(r, "lsm", EIO, "%s %s: short write", what, name);
    return 0;
}

int stk_lsm_exec_label(const char *proc, const char *apparmor_profile,
                       const char *selinux_label, struct stk_result *r) {
    if (apparmor_profile != NULL && apparmor_profile[0]) {
        /* the stacked-LSM file first, then the shared one (older kernels) */
        static const char *const aa[] = {"thread-self/attr/apparmor/exec", "thread-self/attr/exec"};
        int fd = open_attr(proc, aa, 2, r);
        if (fd < 0)
            return -1;
        char data[4096];
        int n = snprintf(data, sizeof data, "exec %s", apparmor_profile);
        if (n < 0 || (size_t)n >= sizeof data) {
            close(fd);
            return stk_fail(r, "lsm", ENAMETOOLONG, "apparmor exec %s: %s", apparmor_profile,
                            strerror(ENAMETOOLONG));
        }
        if (write_label(fd, data, "apparmor exec", apparmor_profile, r) != 0)
            return -1;
    }
    if (selinux_label != NULL && selinux_label[0]) {
        static const char *const se[] = {"thread-self/attr/exec"};
        int fd = open_attr(proc, se, 1, r);
        if (fd < 0)
            return -1;
        if (write_label(fd, selinux_label, "selinux exec", selinux_label, r) != 0)
            return -1;
    }
    return 0;
}
