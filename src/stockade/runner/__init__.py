"""The hardened runner behind `stockade run` and `stockade.run(...)`.

Planning, in Python, before anything is made (what can be refused early is refused
with nothing to undo): plan.py and prepare.py turn the policy into a frozen Plan (its
PolicyPart cached with the compiled seccomp program); preflight.py checks the host.

The set-up, in C: the compiled executor (`stockade-oci --executor`, started by
executor/spawn.py with the plan as one JSON document, executor/plan_json.py) clones the
container's process into its namespaces as the runner's child and carries the plan out
in the order, and for the reasons, of docs/EXECUTOR.md (executor/child.c): attach itself
to the cgroup, enter the cgroup namespace, clone the host trees; once the id maps are
written, become root of the user namespace, hostname, sysctls, loopback, the new root
(rootfs.c: fd-based mounts, runc's masked/read-only paths, pivot_root, old root
detached); then LSM label, rlimits, capabilities, no_new_privs, Landlock, fds closed on
exec, cwd resolved inside the root. With an init (PID 1 of the new pid namespace) it
forks the payload, which takes its own last steps (session, rlimits, signals, seccomp
last, execve), and stays as a tiny init that reaps and forwards signals
(executor/steps/init.c). Without an init (OCI, or no pid namespace) the first process
takes every step and execs.

Supervision, in Python (launcher.py): cgroups/ (v1 or v2: create, limit) before the
executor starts; idmap.py writes the maps and the network jail is attached while the
process waits; then release, supervise (signals, tty), report (cgroup peak memory, cpu,
pids peak, OOM) and remove the cgroup, whatever happened.

CVE-2019-5736 (the runtime's binary overwritten through /proc/self/exe): the runtime
processes the payload can see, the init and the container's process before its execve,
are the C executor, `stockade-oci`, a file of the host. They make themselves
non-dumpable once the id maps are written (`oci exec`: before joining the container)
and were never exec'd inside, so /proc/1/exe, fd/, mem and ptrace are refused to the
payload (tests/integration/runner: escape_payload.py); the runner outside is in another
pid namespace, invisible; the host root is bound read-only and nosuid; and root inside
maps to an unprivileged host id (or the invoker).

Runner exit codes: stockade.runner.codes.EXIT_CODES (also `stockade run --help`).
"""
