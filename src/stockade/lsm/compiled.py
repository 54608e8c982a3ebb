"""The LSM part of a run's plan: the label to set and the compiled text the runner loads
when the kernel lacks it (the same compilers as `stockade compile`)."""

from __future__ import annotations

import hashlib

from stockade.linux.hostfacts import HostFacts
from stockade.policy.model import Policy
from stockade.runner.plan import LsmPlan


def _digest(*texts: str) -> str:
    h = hashlib.sha256()
    for text in texts:
        h.update(text.encode())
        h.update(b"\0")
    return h.hexdigest()


def lsm_plan(policy: Policy, host: HostFacts, apparmor: bool, selinux: bool) -> LsmPlan:
    """apparmor / selinux: that LSM is active here and the policy names it."""
    aa_name = aa_mode = aa_text = ""
    if apparmor:
        from stockade.profiles.apparmor import render_profile

        aa_name = policy.name
        aa_mode = policy.lsm.apparmor.mode if policy.lsm.apparmor is not None else "enforce"
        aa_text = render_profile(policy, host)
    modules: tuple[tuple[str, str], ...] = ()
    label = None
    file_context = ""
    if selinux:
        from stockade.lsm.selinux import modules_for

        modules = modules_for(policy, host)
        label = f"system_u:system_r:{policy.selinux_type}:s0"
        if policy.filesystem.writable or policy.filesystem.tmpfs:  # the module has the type
            file_context = f"system_u:object_r:{policy.selinux_type[:-2]}_rw_file_t:s0"
    return LsmPlan(
        apparmor_profile=aa_name or None, selinux_label=label, required=policy.lsm.required,
        apparmor_mode=aa_mode, apparmor_text=aa_text,
        apparmor_digest=_digest(aa_text) if aa_text else "",
        selinux_modules=modules,
        selinux_digest=_digest(*(t for _, t in modules)) if modules else "",
        selinux_file_context=file_context)
