"""AppArmor profiles in the kernel: which is loaded, load one (apparmor_parser -r, only
when the kernel does not already hold this text), unload one, read a task's label.

Whether AppArmor is active is the kernel's list of active LSMs (linux.host.active_lsms,
the probe the runner's plan also asks), with the reason when it is not.
"""

from __future__ import annotations

import os

from stockade.lsm import stamps
from stockade.runner._record import frozen

# Imported where a profile is loaded, not here: the check a run makes when the kernel
# already holds its profile (is_current) stays one syscall and a few file reads, without
# subprocess or shutil.

SECURITYFS = "/sys/kernel/security/apparmor"
PARSER_TIMEOUT = 300  # seconds: one profile compiles in well under a second natively,
# but under an emulated CPU (the lab without KVM) it takes many times that


class AppArmorLoadError(Exception):
    """The profile could not be put into (or taken out of) the kernel; says why."""


@frozen
class KernelProfile:
    name: str
    mode: str  # enforce, complain, kill, unconfined
    fingerprint: str  # the kernel's sha1 of the loaded policy; "" when it keeps none


def _read(path: str) -> str:
    with open(path) as fh:
        return fh.read().strip()


def kernel_profile(name: str) -> KernelProfile | None:
    """The profile `name` as the kernel holds it, or None when it is not loaded."""
    base = os.path.join(SECURITYFS, "policy", "profiles")
    try:
        entries = os.listdir(base)
    except OSError:
        return None
    for entry in entries:
        # securityfs names a profile's directory "<name>.<index>"
        if not entry.startswith(name + "."):
            continue
        directory = os.path.join(base, entry)
        try:
            if _read(os.path.join(directory, "name")) != name:
                continue
            mode = _read(os.path.join(directory, "mode"))
        except OSError:
            continue  # replaced or removed while we looked
        try:
            fingerprint = _read(os.path.join(directory, "sha1"))
        except OSError:
            fingerprint = ""
        return KernelProfile(name, mode, fingerprint)
    return None


def _parser() -> str:
    import shutil

    found = shutil.which("apparmor_parser") or next(
        (p for p in ("/usr/sbin/apparmor_parser", "/sbin/apparmor_parser") if os.path.exists(p)),
        None)
    if found is None:
        raise AppArmorLoadError("apparmor_parser is not installed (Debian package apparmor)")
    return found


def unavailable_reason() -> str | None:
    """Why no profile can be loaded here, or None: AppArmor is an active LSM and its
    securityfs interface, which apparmor_parser loads through, is mounted."""
    from stockade.linux.host import active_lsms

    if "apparmor" not in active_lsms():
        return ("AppArmor is not active on this host (not built into the kernel, or not "
                "in the boot lsm= list)")
    if not os.path.isdir(SECURITYFS):
        return f"AppArmor's securityfs interface is not mounted ({SECURITYFS})"
    return None


def require_active() -> None:
    why = unavailable_reason()
    if why is not None:
        raise AppArmorLoadError(why)


def is_current(name: str, digest: str) -> bool:
    """The kernel holds `name` exactly as stockade last loaded it from text `digest`."""
    loaded = kernel_profile(name)
    stamp = stamps.read("apparmor", name)
    return (loaded is not None and stamp is not None and bool(loaded.fingerprint)
            and stamp == (digest, loaded.fingerprint))


def ensure_loaded(name: str, text: str, digest: str) -> bool:
    """Load profile `name` (compiled `text`, whose sha256 is `digest`) unless the kernel
    already holds it from the same text. True when it was (re)loaded now."""
    require_active()
    if is_current(name, digest):
        return False
    load(name, text, digest)
    return True


def load(name: str, text: str, digest: str) -> KernelProfile:
    """apparmor_parser -r: add the profile, or replace it atomically (tasks already in
    it move to the new rules)."""
    import subprocess

    require_active()
    try:
        proc = subprocess.run([_parser(), "--replace", "--quiet"], input=text, text=True,
                              capture_output=True, timeout=PARSER_TIMEOUT, check=False)
    except subprocess.TimeoutExpired as exc:
        raise AppArmorLoadError(f"apparmor_parser took over {PARSER_TIMEOUT} s") from exc
    if proc.returncode != 0:
        why = " ".join(proc.stderr.split())[:400] or f"exit status {proc.returncode}"
        raise AppArmorLoadError(f"apparmor_parser could not load profile '{name}': {why}")
    loaded = kernel_profile(name)
    if loaded is None:
        raise AppArmorLoadError(f"apparmor_parser succeeded but the kernel shows no profile "
                                f"'{name}' (does the text define it?)")
    stamps.write("apparmor", name, digest, loaded.fingerprint or "-")
    return loaded


def unload(name: str) -> bool:
    """Remove profile `name` from the kernel; False when it was not loaded. Tasks still
    confined by it become unconfined (the kernel's rule)."""
    stamps.forget("apparmor", name)
    if kernel_profile(name) is None:
        return False
    try:
        with open(os.path.join(SECURITYFS, ".remove"), "w") as fh:
            fh.write(name)
    except OSError as exc:
        raise AppArmorLoadError(f"cannot remove profile '{name}': {exc.strerror}") from exc
    return True


def task_label(pid: int | str) -> str:
    """The task's AppArmor label as the kernel shows it, e.g. "web (enforce)" or
    "unconfined"; the AppArmor-specific file first (it answers even when another LSM
    owns attr/current)."""
    last: OSError | None = None
    for rel in ("attr/apparmor/current", "attr/current"):
        try:
            return _read(f"/proc/{pid}/{rel}")
        except OSError as exc:
            last = exc
    raise last or OSError("no attr file")
