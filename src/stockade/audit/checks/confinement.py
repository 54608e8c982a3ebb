"""Confinement rows: seccomp, LSMs, no_new_privs, user namespaces, keyrings."""

from __future__ import annotations

from collections.abc import Mapping

from stockade.audit import probes_lib
from stockade.audit.model import Severity, Status, Verdict, absent, na
from stockade.audit.probe import Probe
from stockade.audit.registry import Proofs, check
from stockade.audit.view import View


def _seccomp_probes(view: View) -> Mapping[str, Probe]:
    return {"keyctl": Probe(probes_lib.keyctl_session)} if view.seccomp_mode == 0 else {}


@check("SECCOMP-DISABLED", "no seccomp filter", Severity.HIGH,
       remediation="syscalls: extends [default] (or stricter); never seccomp=unconfined",
       references=("CIS Docker 5.21", "CWE-693"), probes=_seccomp_probes)
def seccomp_disabled(view: View, proofs: Proofs) -> Verdict:
    """`Seccomp: 0`: every syscall reaches the kernel. Proof: keyctl, which every default
    profile blocks, is not blocked."""
    ev = (view.status_line("Seccomp"), view.status_line("Seccomp_filters"))
    if view.seccomp_mode != 0:
        return absent(*ev)
    o = proofs.get("keyctl")
    status = Status.EXPLOITABLE if o is not None and (o.ok or o.errno not in (1, 38)) else Status.PRESENT
    return Verdict(status, ev, proofs.line("keyctl"), fix=(("extends", ["default"]),))


@check("APPARMOR-UNCONFINED", "AppArmor enabled but the container is unconfined", Severity.HIGH,
       remediation="lsm.apparmor.mode: enforce", references=("CIS Docker 5.1", "CWE-693"))
def apparmor_unconfined(view: View, proofs: Proofs) -> Verdict:
    """AppArmor is active on the host and the process label is `unconfined`."""
    if view.host.from_inside and not view.host.apparmor_enabled:
        return na("AppArmor state not visible (not enabled, or securityfs not mounted)")
    if not view.host.apparmor_enabled:
        return na("AppArmor is not enabled on this host")
    ev = (f"label: {view.lsm_label or '(none)'}",)
    if view.lsm_label.split(" (")[0] in ("unconfined", ""):
        return Verdict(Status.PRESENT, ev, fix=(("lsm.apparmor.mode", "enforce"),))
    return absent(*ev)


@check("SELINUX-WEAK", "SELinux permissive or an unconfined type", Severity.MEDIUM,
       remediation="lsm.selinux.type: a confined container type (e.g. container_t)",
       references=("CIS Docker 5.2", "CWE-693"))
def selinux_weak(view: View, proofs: Proofs) -> Verdict:
    """SELinux permissive, or the process runs as spc_t / unconfined_t."""
    if view.host.selinux_mode == "disabled":
        return na("SELinux is not enabled on this host")
    ev = (f"mode: {view.host.selinux_mode}", f"label: {view.lsm_label}")
    weak = view.host.selinux_mode == "permissive" or any(
        t in view.lsm_label for t in (":spc_t:", ":unconfined_t:"))
    if weak:
        return Verdict(Status.PRESENT, ev, fix=(("lsm.selinux.type", "container_t"),))
    return absent(*ev)


@check("NNP-DISABLED", "no_new_privs is off", Severity.LOW, remediation="no_new_privileges: true",
       references=("CIS Docker 5.25", "CWE-269"))
def nnp_disabled(view: View, proofs: Proofs) -> Verdict:
    """Without no_new_privs, setuid binaries and file capabilities can raise privileges."""
    ev = view.status_line("NoNewPrivs")
    if view.no_new_privs:
        return absent(ev)
    return Verdict(Status.PRESENT, (ev,), fix=(("no_new_privileges", True),))


@check("USERNS-ABSENT", "container root is host root (no user namespace)", Severity.HIGH,
       remediation="user.map: auto (namespaces: [user, ...])",
       references=("CIS Docker 2.8", "CIS Docker 5.30", "CWE-250"))
def userns_absent(view: View, proofs: Proofs) -> Verdict:
    """uid_map `0 0 4294967295`: uid 0 inside is uid 0 outside, so every other gap is fatal."""
    ev = (f"uid_map: {' '.join(view.uid_map_text.split())}",)
    full = any(r.inside == 0 and r.outside == 0 and r.count == 4294967295 for r in view.uid_map)
    if full:
        return Verdict(Status.PRESENT, ev, fix=(("user.map", "auto"), ("namespaces", ["user"])))
    return absent(*ev)


def _userns_probes(view: View) -> Mapping[str, Probe]:
    return {"unshare": Probe(probes_lib.unshare_user, isolated=True)}


@check("USERNS-CREATE", "unprivileged user namespaces can be created", Severity.MEDIUM,
       remediation="syscalls.rules: deny unshare/clone with CLONE_NEWUSER (the default preset does)",
       references=("CWE-1189",), probes=_userns_probes)
def userns_create(view: View, proofs: Proofs) -> Verdict:
    """A new user namespace gives full capabilities over fresh namespaces: a large part of
    the kernel (nftables, mount code) becomes reachable. Proof: unshare(CLONE_NEWUSER) in a
    throw-away child."""
    o = proofs.get("unshare")
    if o is None:
        return Verdict(Status.ERROR, (proofs.line("unshare"),))
    if o.ok:
        return Verdict(Status.EXPLOITABLE, ("unshare(CLONE_NEWUSER) succeeded",), proofs.line("unshare"),
                       fix=(("syscalls.rules", [{"syscalls": ["unshare"], "action": "errno",
                                                 "args": [{"index": 0, "op": "masked_eq",
                                                           "mask": 0x10000000, "value": 0x10000000}]}]),))
    return absent(proofs.line("unshare"))


def _keyring_probes(view: View) -> Mapping[str, Probe]:
    return {"keyctl": Probe(probes_lib.keyctl_session)}


def _proc_keys_has(name: str) -> bool:
    try:
        with open("/proc/keys") as fh:
            return any(line.rstrip().endswith(f": {name}: empty") or f" {name}:" in line or
                       line.rstrip().endswith(f" {name}") for line in fh)
    except OSError:
        return False


@check("KEYRING-SHARED", "the kernel keyring is shared with the host", Severity.MEDIUM,
       remediation="syscalls.deny: [keyctl, add_key, request_key]",
       references=("CWE-668",), probes=_keyring_probes)
def keyring_shared(view: View, proofs: Proofs) -> Verdict:
    """keyctl reachable and the session keyring is not one the runtime made for the container
    (runc names it `_ses.<id>`), so keys of the host session can be read or planted."""
    o = proofs.get("keyctl")
    if o is None:
        return Verdict(Status.ERROR, (proofs.line("keyctl"),))
    if not o.ok:
        return absent(proofs.line("keyctl") + " (keyctl blocked)")
    fix = (("syscalls.deny", ["keyctl", "add_key", "request_key"]),)
    if view.mode == "self":
        # runc names the container's own keyring "_ses.<id>"; the host's is "_ses" or
        # "_uid_ses.<uid>"
        own = o.detail.split()[-1].startswith("_ses.") if o.detail else False
        ev = (proofs.line("keyctl"),)
        return absent(*ev) if own else Verdict(Status.PRESENT, ev, fix=fix)
    # From the host our child keeps the auditor's keyring; look for the container's own.
    if view.container_id and _proc_keys_has(f"_ses.{view.container_id}"):
        return absent("keyctl reachable", f"/proc/keys: keyring _ses.{view.container_id} exists")
    if not view.container_id:
        return na("keyctl reachable; the container id is unknown, so its keyring cannot be told apart")
    return Verdict(Status.PRESENT, ("keyctl reachable", f"no _ses.{view.container_id} keyring in /proc/keys"),
                   fix=fix)


CHECKS = (seccomp_disabled, apparmor_unconfined, selinux_weak, nnp_disabled, userns_absent,
          userns_create, keyring_shared)
