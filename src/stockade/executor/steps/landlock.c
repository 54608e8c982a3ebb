/* b. Landlock: the ruleset the planner made, applied as is.
 *
 * The planner decides everything that depends on the kernel before the run
 * (profiles/landlock.landlock_rules: the ABI, the access rights it knows, what is
 * dropped and noted, runner/prepare.py: "required" without Landlock is refused), so
 * this step holds no policy: it sizes the ruleset attribute for the ABI, opens each rule
 * path O_PATH in the new root, narrows a file's rights to the ones files take, and
 * restricts itself. A path missing in this root is skipped (and counted); any other
 * error fails the step, never half-applied: the domain only exists after
 * landlock_restrict_self, the last call.
 */
#define _GNU_SOURCE
#include "steps.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Debian's <linux/landlock.h> predates the net and scoped fields: our own layouts. */
#define X_RULE_PATH_BENEATH 1
#define X_RULE_NET_PORT 2
#define X_ACCESS_FS_EXECUTE (1ULL << 0)
#define X_ACCESS_FS_WRITE_FILE (1ULL << 1)
#define X_ACCESS_FS_READ_FILE (1ULL << 2)
#define X_ACCESS_FS_TRUNCATE (1ULL << 14)
#ifndef SYS_landlock_create_ruleset /* the same numbers on every architecture */
#define SYS_landlock_create_ruleset 444
#define SYS_landlock_add_rule 445
#define SYS_landlock_restrict_self 446
#endif
struct x_ruleset_attr { uint64_t handled_fs, handled_net, scoped; };
struct x_path_beneath { uint64_t allowed_access; int32_t parent_fd; } __attribute__((packed));
struct x_net_port { uint64_t allowed_access, port; };

/* struct landlock_ruleset_attr grew with the ABI: fs; + net (4); + scoped (6). The
 * kernel refuses a size naming fields it does not know, so the size follows the ABI. */
static size_t attr_size(int abi) {
    if (abi >= 6)
        return sizeof(struct x_ruleset_attr);
    if (abi >= 4)
        return 2 * sizeof(uint64_t);
    return sizeof(uint64_t);
}

/* A file takes only EXECUTE/WRITE_FILE/READ_FILE, plus TRUNCATE (when handled) with
 * WRITE_FILE: the kernel refuses directory rights on a file. */
static uint64_t file_access(uint64_t access, uint64_t handled_fs) {
    access &= X_ACCESS_FS_EXECUTE | X_ACCESS_FS_WRITE_FILE | X_ACCESS_FS_READ_FILE;
    if (access & X_ACCESS_FS_WRITE_FILE)
        access |= handled_fs & X_ACCESS_FS_TRUNCATE;
    return access;
}

static int add_path(int ruleset, const struct stk_landlock_path *rule, uint64_t handled_fs,
                    size_t *skipped, struct stk_result *r) {
    int fd = open(rule->path, O_PATH | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) { /* not in this root: the rule has nothing to grant */
            if (skipped != NULL)
                (*skipped)++;
            return 0;
        }
        return stk_fail(r, "landlock", errno, "%s: %s", rule->path, strerror(errno));
    }
    /* A directory? The fd's own inode says (the open followed symlinks) without a
     * second lookup. A failing fstat counts as "not a directory": the narrower rights. */
    struct stat st;
    uint64_t access = rule->access;
    if (fstat(fd, &st) != 0 || !S_ISDIR(st.st_mode))
        access = file_access(access, handled_fs);
    struct x_path_beneath pb = {access, fd};
    long rc = syscall(SYS_landlock_add_rule, ruleset, X_RULE_PATH_BENEATH, &pb, 0);
    int err = errno;
    close(fd);
    if (rc != 0)
        return stk_fail(r, "landlock", err, "add rule %s (access %#llx): %s", rule->path,
                        (unsigned long long)access, strerror(err));
    return 0;
}

int stk_landlock_apply(const struct stk_landlock *ll, int scoped, size_t *skipped,
                       struct stk_result *r) {
    if (skipped != NULL)
        *skipped = 0;
    if (!ll->enabled || ll->abi <= 0)
        return 0;
    struct x_ruleset_attr attr = {ll->handled_fs, ll->handled_net, scoped ? ll->scoped : 0};
    int ruleset = (int)syscall(SYS_landlock_create_ruleset, &attr, attr_size(ll->abi), 0);
    if (ruleset < 0)
        return stk_fail(r, "landlock", errno, "create ruleset (ABI %d): %s", ll->abi,
                        strerror(errno));
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < ll->npaths + ll->nextra; i++) {
        const struct stk_landlock_path *rule =
            i < ll->npaths ? &ll->paths[i] : &ll->extra[i - ll->npaths];
        rc = add_path(ruleset, rule, ll->handled_fs, skipped, r);
    }
    for (size_t i = 0; rc == 0 && i < ll->nports; i++) {
        struct x_net_port np = {ll->ports[i].access, ll->ports[i].port};
        if (syscall(SYS_landlock_add_rule, ruleset, X_RULE_NET_PORT, &np, 0) != 0)
            rc = stk_fail(r, "landlock", errno, "add rule port %llu: %s",
                          (unsigned long long)np.port, strerror(errno));
    }
    if (rc == 0 && syscall(SYS_landlock_restrict_self, ruleset, 0) != 0)
        rc = stk_fail(r, "landlock", errno, "restrict self: %s", strerror(errno));
    close(ruleset);
    return rc;
}
