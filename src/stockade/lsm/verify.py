"""After the payload's execve: is it really in the profile / type the policy asked for?

The kernel either performs the exec transition or fails the execve, so this is the
second look the issue asks for (a profile replaced in between, an LSM that ignored the
label): the runner reads the payload's label from procfs and, when lsm.required, stops
the sandbox if it is not the one asked for."""

from __future__ import annotations

from stockade.runner.plan import LsmPlan
from stockade.runner.procstat import first_child


def payload_pid(pid: int, has_init: bool) -> int | None:
    """The payload's host pid: the sandbox's process itself, or its init's only child.
    None when it has already ended (nothing left to check)."""
    return first_child(pid) if has_init else pid


def _read(path: str) -> str:
    with open(path) as fh:
        return fh.read().strip().rstrip("\0")


def mismatch(plan: LsmPlan, pid: int) -> str | None:
    """Why task `pid` is not confined as `plan` asks, or None when it is (or is gone)."""
    try:
        if plan.apparmor_profile:
            from stockade.lsm.apparmor import task_label

            want = f"{plan.apparmor_profile} ({plan.apparmor_mode or 'enforce'})"
            got = task_label(pid)
            if got != want:
                return f"the payload runs as AppArmor '{got}', not '{want}'"
        if plan.selinux_label:
            got = _read(f"/proc/{pid}/attr/current")
            if got != plan.selinux_label:
                return f"the payload runs as SELinux '{got}', not '{plan.selinux_label}'"
    except FileNotFoundError:
        return None  # the payload has already ended
    except OSError as exc:
        return f"cannot read the payload's label: {exc.strerror}"
    return None
