/* The executor: the container's set-up steps, carried out from a plan (docs/EXECUTOR.md).
 *
 * plan_read.c fills `struct plan` from the plan's JSON (json-c); rootfs.c builds the new
 * root (every mount kind, pivot_root); child.c is the container's process from its clone
 * to execve (cgroup attach, id switch, namespace settings, root, LSM label, rlimits,
 * capabilities, no_new_privs, cwd, the gate, seccomp). The steps of steps/ are called
 * from there. Each set-up step exists here once; the front end (oci/frontend.c,
 * oci/fastexec.c) links these files. */
#ifndef STOCKADE_EXECUTOR_H
#define STOCKADE_EXECUTOR_H

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <json-c/json.h>
#include <limits.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/utsname.h>
#include <unistd.h>
#include "protocol.h"
#include "steps.h"

#define FAST_MAX 64 /* every list in a plan (more: not stored by fastplan.py) */
#define MAX_ARGS 4096 /* a command's arguments, its environment: plan_json.MAX_ARGS */
#define MAX_MOUNTS 256 /* but the mounts (the jail alone has about 60): plan_json.MAX_MOUNTS */

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

enum mount_kind { K_PROC = 1, K_SYSFS, K_TMPFS, K_DEV, K_FS, K_BIND, K_WRITABLE, K_READONLY, K_MASK,
                  K_SYMLINK, K_FILE };
extern const char *const MOUNT_KINDS[]; /* by enum mount_kind (plan_read.c) */

struct kv { const char *key, *value; }; /* value NULL: a flag option */

struct mop {
    uint64_t kind, readonly, optional, attrs;
    const char *dst, *src, *fstype;
    const char *source;   /* fresh filesystems: mountinfo's source ("" : the type's name) */
    const char *why;      /* why the mount is made (error messages; "": none) */
    uint64_t propagation; /* MS_SHARED/SLAVE/PRIVATE/UNBINDABLE (| MS_REC), 0: unchanged */
    int ndata;
    struct kv data[FAST_MAX];
};

/* plan.exec_mode: OCI create (the gate), stockade run (EXECUTING, no gate), oci exec */
#define EXEC_CREATE 0
#define EXEC_RUN 1
#define EXEC_EXEC 2

/* An OCI startContainer hook (run by child.c inside the container, before the program). */
struct start_hook {
    const char *path;
    char **argv; /* NULL-terminated; empty: [path] */
    char **env;
    int64_t timeout; /* seconds; -1: none */
};

struct cgctl { const char *name, *mount; uint64_t absolute; };
/* One limit: written to `file` in its controller's directory. v2: the controller must
   be available there (the `key` names the resources entry in the error). A missing
   controller or file: absent 0, an error naming the file; 1, a note (absent_text) and
   the limit skipped; 2, the error absent_text. */
enum { ABSENT_ERROR = 0, ABSENT_NOTE = 1, ABSENT_FAIL = 2 };
struct cgwrite { const char *ctrl, *key, *file, *value, *absent_text; int absent; };
/* Notes the cgroup steps leave for the runtime to print (a limit this host cannot apply). */
struct cg_notes { int n; char text[FAST_MAX][512]; };

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
    const char *cg_leaf; /* "" for stockade/<cg_name> */
    const char *cg_name; /* run documents: the run's id; stored plans: "" (the container's id) */
    uint64_t cg_record;  /* the runtime records the directories (planned, made) before we go on */
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
    uint64_t root_host; /* the host's /: read-only (when root_readonly) at open_sources */
    uint64_t root_jail; /* rootfs "": a fresh tmpfs, read-only (when so) after the mounts */
    int nmounts;
    struct mop *mounts;
    uint64_t userns, maps_root;
    const char *uid_map, *gid_map;
    uint64_t uid, gid, setgroups;
    uint64_t has_owner, owner; /* the host uid that owns the new user namespace */
    uint64_t maps_direct;      /* the maps are written into /proc/PID (else: newuidmap) */
    int ngroups;
    gid_t groups[FAST_MAX];
    uint64_t bounding, permitted, effective, inheritable, last_cap_plan;
    int nambient;
    uint64_t ambient[FAST_MAX];
    int nrlimits;
    uint64_t rlimits[FAST_MAX][3];
    uint64_t nnp, seccomp_flags;
    const unsigned char *bpf[3]; /* policy, extra, setid guard (child.c loads them in order) */
    size_t bpf_len[3];
    const char *cwd;
    uint64_t has_umask, umask;
    int nargv, nenv;
    char **argv; /* NULL-terminated */
    char **env;  /* NULL-terminated, one slot spare (HOME) */
    uint64_t home_lookup, home_uid;
    const char *path_var, *st_rootfs;
    int nann;
    struct kv ann[FAST_MAX];
    int nnotes;
    const char *notes[FAST_MAX];
    /* read_process_extras: the process steps beyond version 1 (child.c) */
    uint64_t exec_mode; /* EXEC_CREATE (0), EXEC_RUN, EXEC_EXEC */
    uint64_t init;      /* a tiny init is PID 1, the payload its child */
    uint64_t has_console;
    struct stk_console_size console; /* OCI consoleSize of the pty made inside */
    struct stk_landlock landlock;    /* .enabled 0: none */
    uint64_t seccomp_listener; /* the last filter loads with a listener, sent on fds.listener */
    uint64_t has_pids_limit;
    int64_t pids_limit;
    uint64_t pause_before_root; /* OCI hooks: "h" before the root is built */
    int nstart_hooks;
    struct start_hook *start_hooks; /* startContainer hooks, run after the gate */
};


#define NDEV 6 /* the /dev nodes bound from the host (rootfs.c DEV_NODES) */

/* --- plan_read.c: the plan's JSON, checked field by field ---------------------------- */

#define PLAN_VERSION 2

/* A typed refusal: the first field missing or not of its documented type. */
struct rd { int bad; char why[512]; };
void r_fail(struct rd *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
json_object *r_field(struct rd *r, json_object *o, const char *key, json_type t, int nullable);
const char *r_strv(struct rd *r, json_object *v, const char *what);
const char *r_str(struct rd *r, json_object *o, const char *key);
uint64_t r_int(struct rd *r, json_object *o, const char *key);
json_object *r_obj(struct rd *r, json_object *o, const char *key);
json_object *r_list(struct rd *r, json_object *o, const char *key, int max, int *n);
json_object *r_tuple(struct rd *r, json_object *list, int i, size_t want, const char *what);
json_object *r_item(json_object *list, int i);
uint64_t r_intv(struct rd *r, json_object *v, const char *what);
/* The plan's set-up part (namespaces ... notes) into p; 0 and r->why on a refusal. */
int read_plan(struct rd *r, json_object *doc, struct plan *p);
/* init, tty, landlock, seccomp.listener, pids_limit, hooks, exec_mode into p (read_plan
   calls it; a refusal in r). */
void read_process_extras(struct rd *r, json_object *doc, struct plan *p);

/* --- rootfs.c: the new root ------------------------------------------------------- */

/* open_sources' trees: one per mount (by its index), and the /dev nodes' */
struct trees {
    int fd[MAX_MOUNTS]; /* by p->mounts index: binds' clones or premade trees, -1 */
    int dev[NDEV];
    int ndevices; /* user namespace: the linux.devices' host nodes, by name */
    struct { const char *name; int fd; } devices[FAST_MAX];
};
struct child_fds;
int x_openat2(int dfd, const char *path, uint64_t flags, uint64_t resolve);
/* O_PATH fd of path inside the root (create: R_NONE, or a missing path is made: mkdir -p /
   touch); -1 + errno, and in why the runner's message for the failures it names (else ""). */
enum { R_NONE, R_DIR, R_FILE };
int resolve(int root, const char *path, int create, char *why, size_t whylen);
/* The host-side source trees, cloned while the host tree is still visible (or f's premade
   idmapped ones); *rootfd -1: the jail (build_root makes its tmpfs). */
void open_sources(const struct plan *p, const struct child_fds *f, struct trees *t, int *rootfd);
/* Attach the new root, mount everything into it, pivot, detach the old root. */
void build_root(const struct plan *p, struct trees *t, int roottree);

/* Runtime side, before the clone: the mountpoints a bare rootfs lacks (0, or -1 + why). */
int prepare_mountpoints(const struct plan *p, char *why, size_t whylen);

/* --- clone.c: the clone and the id maps (runtime side) ------------------------------ */

long clone_container(uint64_t flags, int cgfd);
int write_id_maps(const struct plan *p, long pid, char *why, size_t whylen);

/* --- cgroups.c: the container's cgroups (runtime side) ------------------------------ */

int own_cgroup(const char *ctrl, char *out, size_t n);
/* mkdir -p base/rel inside base's hierarchy (why: the failure); cpuset: each directory
   made gets its parent's cpuset.cpus and cpuset.mems (a v1 cpuset starts empty). */
int mkdir_below(const char *base, const char *rel, int exist_ok, int cpuset, char *why,
                size_t whylen);
int cgroup_paths(const struct plan *p, const char *id, char *rel, size_t rellen,
                 char bases[][PATH_MAX], char ctldir[][PATH_MAX], char *why, size_t whylen);
int cgroup_make(const struct plan *p, const char *base, const char *rel, const char *ctldir,
                int cpuset, char *why, size_t whylen);
int cgroup_limit(const struct plan *p, char ctldir[][PATH_MAX], int *cgfd, struct cg_notes *notes,
                 char *why, size_t whylen);

/* Fault injection, in the tests' build only (tests/integration/runner/test_faults.py):
   STOCKADE_TEST_FAULT=STEP makes STEP fail where it starts, as a real failure would, so
   each failure is proven reported and undone (production code holds no fault switch). */
#ifdef STOCKADE_TEST_HOOKS
int test_fault_asked(const char *step);
#else
#define test_fault_asked(step) ((void)(step), 0)
#endif
#define STEP_STARTS(step) \
    do { if (test_fault_asked(step)) child_fail(step, "fault injected (test)"); } while (0)

/* --- main.c: the executor verb (`stockade-oci --executor FD`) ---------------------- */

/* Read a run document from FD (runner/launcher.py, oci/execute.py), join what it says,
   clone the container's process as the caller's child (CLONE_PARENT), report its pid and
   exit; the process carries the plan out (child_main). */
void executor_main(const char *fd_arg) __attribute__((noreturn));

/* --- files.c ------------------------------------------------------------------------ */

ssize_t read_text(const char *path, char *buf, size_t size);
int write_text(const char *path, const char *text);

/* --- child.c: the container's process ------------------------------------------- */

/* A failed step: one line "step<TAB>message" on the error pipe, the step's exit code. */
void child_fail(const char *step, const char *fmt, ...) __attribute__((noreturn, format(printf, 2, 3)));
void step_failed(const struct stk_result *r) __attribute__((noreturn));
/* Where child_fail writes its line (the executor verb sets it before its own steps). */
void child_report_to(int err_w);
#define CHECK(step, expr) do { if ((expr) < 0) child_fail(step, "%s: %s", #expr, strerror(errno)); } while (0)

/* The fds the runtime hands the container's process (-1: none). */
struct premade_tree { const char *key; int fd; }; /* "/" or "mount N" (runner.plan.tree_key) */
struct child_fds {
    int err_w, sync_r, status_w, created_w, gate;
    int tasks[FAST_MAX];
    int ntasks;
    int tty_slave;  /* run: a host pty's slave, the payload's stdio */
    int tty_sock;   /* OCI terminal: the pty is made inside, its master sent here */
    int listener;   /* stockade learn: the recorder's listener fd is sent here */
    int ntrees;
    struct premade_tree trees[FAST_MAX + 1]; /* the parent's idmapped trees */
};
/* A child_fds with every fd -1 and no tasks or trees. */
void child_fds_none(struct child_fds *f);
/* From the clone to execve: the steps in the order of docs/EXECUTOR.md. */
void child_main(const struct plan *p, struct child_fds *f) __attribute__((noreturn));

#endif
