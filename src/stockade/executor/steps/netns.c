/* c. The namespace-wide settings the init makes, in the new uts/ipc/net namespaces:
 * after the id maps are written (root of the user namespace owns them), before the root
 * is built (so through the host's /proc: these keys are per-namespace, and the kernel
 * picks the writer's). */
#define _GNU_SOURCE
#include "steps.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#define X_RESOLVE_BENEATH 0x08
struct x_open_how { uint64_t flags, mode, resolve; };

int stk_set_hostname(const char *name, struct stk_result *r) {
    if (name == NULL || !name[0]) /* none asked: the namespace keeps the copied name */
        return 0;
    if (sethostname(name, strlen(name)) != 0)
        return stk_fail(r, "namespaces", errno, "sethostname: %s", strerror(errno));
    return 0;
}

/* "net.ipv4.ip_forward" -> net/ipv4/ip_forward, opened beneath /proc/sys: a key can
 * only ever name a sysctl (the planner validated the keys). */
static int write_sysctl(int sysdir, const struct stk_sysctl *kv, struct stk_result *r) {
    char rel[PATH_MAX];
    if (snprintf(rel, sizeof rel, "%s", kv->key) >= (int)sizeof rel)
        return stk_fail(r, "namespaces", ENAMETOOLONG, "sysctl %s: %s", kv->key,
                        strerror(ENAMETOOLONG));
    for (char *c = rel; *c; c++)
        if (*c == '.')
            *c = '/';
    struct x_open_how how = {O_WRONLY | O_CLOEXEC, 0, X_RESOLVE_BENEATH};
    int fd = (int)syscall(SYS_openat2, sysdir, rel, &how, sizeof how);
    if (fd < 0)
        return stk_fail(r, "namespaces", errno, "sysctl %s: /proc/sys/%s: %s", kv->key, rel,
                        strerror(errno));
    /* One write of the whole value (a sysctl parses one write). */
    size_t len = strlen(kv->value);
    ssize_t n = write(fd, kv->value, len);
    int err = errno;
    close(fd);
    if (n < 0)
        return stk_fail(r, "namespaces", err, "sysctl %s=%s: %s", kv->key, kv->value,
                        strerror(err));
    if ((size_t)n != len)
        return stk_fail(r, "namespaces", EIO, "sysctl %s=%s: short write", kv->key, kv->value);
    return 0;
}

int stk_write_sysctls(const struct stk_sysctl *kv, size_t n, struct stk_result *r) {
    if (n == 0)
        return 0;
    int sysdir = open("/proc/sys", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (sysdir < 0)
        return stk_fail(r, "namespaces", errno, "/proc/sys: %s", strerror(errno));
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = write_sysctl(sysdir, &kv[i], r);
    close(sysdir);
    return rc;
}

/* `ip link set lo up` with one ioctl pair: no netlink needed for one flag. */
int stk_loopback_up(struct stk_result *r) {
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return stk_fail(r, "namespaces", errno, "socket: %s", strerror(errno));
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    memcpy(ifr.ifr_name, "lo", 3);
    int rc = 0;
    if (ioctl(s, SIOCGIFFLAGS, &ifr) != 0)
        rc = stk_fail(r, "namespaces", errno, "loopback: SIOCGIFFLAGS: %s", strerror(errno));
    else {
        ifr.ifr_flags |= IFF_UP;
        if (ioctl(s, SIOCSIFFLAGS, &ifr) != 0)
            rc = stk_fail(r, "namespaces", errno, "loopback: SIOCSIFFLAGS: %s", strerror(errno));
    }
    close(s);
    return rc;
}
