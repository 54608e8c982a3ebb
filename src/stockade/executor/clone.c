/* The runtime side of the container's birth (docs/EXECUTOR.md, steps 5 and 6): the clone
 * into the plan's namespaces (cgroup v2: born inside its cgroup, clone3
 * CLONE_INTO_CGROUP) and the id maps written into the child's user namespace. */
#define _GNU_SOURCE
#include "executor.h"

/* The clone with `flags` (the plan's namespaces; the executor verb adds CLONE_PARENT,
   `oci exec` has no namespaces of its own). Returns the child's pid in the parent, 0 in
   the child, -1 (errno) on failure. */
long clone_container(uint64_t flags, int cgfd) {
    /* with CLONE_PARENT the parent's own exit signal is used: clone3 wants 0 there */
    uint64_t exit_signal = (flags & CLONE_PARENT) ? 0 : SIGCHLD;
    if (cgfd >= 0) {
        uint64_t args[11] = {flags | X_CLONE_INTO_CGROUP, 0, 0, 0, exit_signal, 0, 0, 0, 0, 0,
                             (uint64_t)cgfd};
        return syscall(SYS_clone3, args, sizeof args);
    }
    return syscall(SYS_clone, (unsigned long)(flags | exit_signal), NULL, NULL, NULL, NULL);
}

/* idmap.write_maps, as root: uid_map, setgroups ("deny" when the plan says so), gid_map.
   0, or -1 with why filled. */
int write_id_maps(const struct plan *p, long pid, char *why, size_t whylen) {
    if (!p->userns)
        return 0;
    const char *files[3] = {"uid_map", "setgroups", "gid_map"};
    const char *maps[3] = {p->uid_map, "deny", p->gid_map};
    for (int i = 0; i < 3; i++) {
        char path[64];
        if (i == 1 && p->setgroups)
            continue;
        snprintf(path, sizeof path, "/proc/%ld/%s", pid, files[i]);
        if (write_text(path, maps[i]) != 0) {
            snprintf(why, whylen, "%s: %s", path, strerror(errno));
            return -1;
        }
    }
    return 0;
}
