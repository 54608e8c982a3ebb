"""The hardened runner behind `stockade run` and `stockade.run(...)`.

Parent (launcher.py; for a big or multi-threaded caller, a launch helper: helper.py):
plan (plan.py, prepare.py: policy -> frozen PolicyPart, cached with
the compiled seccomp program) -> preflight.py (checks, nothing created) -> cgroups/ (v1 or
v2: create, limit) -> clone with the namespaces (linux/syscalls.py, the only ctypes layer) ->
idmap.py (maps written by the parent) -> release -> supervise (signals, tty) -> report
(cgroup peak memory, cpu, pids peak, OOM) -> remove the cgroup, whatever happened.

Child (child.py), PID 1 of the new pid namespace: attach itself to the cgroup, enter the
cgroup namespace, clone the host trees (all while the parent writes the id maps), become
root of the user namespace, hostname, loopback, rootfs.py (fd-based mounts into a new
root, runc's masked/read-only paths, pivot_root, old root detached); then the steps a
child inherits, on itself: caps.py (bounding first, KEEPCAPS, ids, capset, ambient),
no_new_privs, landlock.py, fds closed on exec, cwd resolved inside the root. Then it
starts the payload and stays as a tiny init that reaps and forwards signals:
- posix_spawn (spawn_check.py decides, from the compiled filter): the init applies the
  rlimits and seccomp.py last, then vfork+execve; no Python runs in the payload;
- else a fork of the init: setsid, lsm.py, rlimits.py, signals, seccomp.py last, execve.
Without an init (OCI, or no pid namespace) the first process does all of it and execs.

CVE-2019-5736 (runc overwritten through /proc/self/exe): the runner's binary is the
Python interpreter, and the only runner process visible inside is the init. It is
non-dumpable and was never exec'd in the new user namespace, so /proc/1/exe, fd/, mem
and ptrace are refused to the payload (tests/integration/runner: escape_payload.py);
the runner outside is in another pid namespace, invisible; the host root is bound
read-only and nosuid; and root inside maps to an unprivileged host id (or the invoker).
We chose this over re-exec'ing from a sealed memfd copy of the interpreter, which would
cost a ~6 MB copy (plus libpython) per run and still leave the init as a Python process.

Runner exit codes: stockade.runner.codes.EXIT_CODES (also `stockade run --help`).
"""
