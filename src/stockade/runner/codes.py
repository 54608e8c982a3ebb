"""The runner's own exit codes, one per step family (documented in `stockade run --help`).

The payload's status passes through unchanged (or 128+signal); these codes are returned
only when a runner step failed, and then the payload never ran. Like runc/Docker, 126
and 127 are kept for "cannot execute" and "command not found".
"""

from __future__ import annotations

from stockade.errors import RunnerError

# step name -> exit code
EXIT_CODES: dict[str, int] = {
    "policy": 2,  # the policy does not load (same as every other stockade command)
    # bad input found before anything was created (no command, rootfs, binds, LSM): 2,
    # like every other stockade command's bad input (README: "2 bad input or usage")
    "preflight": 2,
    "cgroups": 111,  # create / limit / attach the cgroup; a limit the set-up itself hits
    "namespaces": 112,  # clone with new namespaces, cgroup ns, hostname, network
    "idmap": 113,  # uid/gid maps, setgroups
    "rootfs": 114,  # mounts, masked/read-only paths, pivot_root
    "lsm": 115,  # AppArmor / SELinux exec label
    "rlimits": 116,
    "capabilities": 117,  # bounding set, identity change, capset, ambient
    "no_new_privs": 118,
    "landlock": 119,
    "hygiene": 120,  # fds, cwd inside the root (CVE-2024-21626), session
    "seccomp": 121,  # compile, cache or load the filter
    "internal": 122,  # the runner's own plumbing (pipes, an unexpected child death)
    "exec-permission": 126,  # found but not executable (EACCES, ENOEXEC)
    "exec": 127,  # command not found
}


def runner_error(step: str, message: str) -> RunnerError:
    return RunnerError(step, message, exit_code=EXIT_CODES.get(step, EXIT_CODES["internal"]))


def describe_codes() -> str:
    return "\n".join(f"  {code:3d}  {step}" for step, code in EXIT_CODES.items())
