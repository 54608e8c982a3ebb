"""The hardened runner behind `stockade run` and `stockade.run(...)`.

Parent (launcher.py): plan (plan.py, prepare.py: policy -> frozen PolicyPart, cached with
the compiled seccomp program) -> preflight.py (checks, nothing created) -> cgroups/ (v1 or
v2: create, limit) -> the plan as one JSON document (executor/plan_json.py) handed to the
compiled executor (`stockade-oci --executor`, posix_spawn()ed by executor/spawn.py), which
clones the container's process into its namespaces as the runner's child -> idmap.py
(maps written by the parent) -> release -> supervise (signals, tty) -> report (cgroup
peak memory, cpu, pids peak, OOM) -> remove the cgroup, whatever happened.

The container's process is the executor's C code (src/stockade/executor/child.c; the
order and the reasons: docs/EXECUTOR.md): attach itself to the cgroup, enter the cgroup
namespace, clone the host trees (while the parent writes the id maps), become root of
the user namespace, hostname, sysctls, loopback, the new root (rootfs.c: fd-based
mounts, runc's masked/read-only paths, pivot_root, old root detached); then the steps a
child inherits, on itself: LSM label, rlimits, capabilities, no_new_privs, Landlock, fds
closed on exec, cwd resolved inside the root. With an init (PID 1 of the new pid
namespace) it forks the payload, which takes its own last steps (session, rlimits,
signals, seccomp last, execve), and stays as a tiny init that reaps and forwards signals
(executor/steps/init.c). Without an init (OCI, or no pid namespace) the first process
takes every step and execs.

CVE-2019-5736 (the runtime's binary overwritten through /proc/self/exe): the only
runtime process visible inside is the init, a clone of the executor. It is non-dumpable
and was never exec'd in the new user namespace, so /proc/1/exe, fd/, mem and ptrace are
refused to the payload (tests/integration/runner: escape_payload.py); the runner outside
is in another pid namespace, invisible; the host root is bound read-only and nosuid; and
root inside maps to an unprivileged host id (or the invoker).

Runner exit codes: stockade.runner.codes.EXIT_CODES (also `stockade run --help`).
"""
