"""What the runner does before it starts a sandbox whose policy names an LSM: make sure
the kernel holds the compiled profile / module (loaded or installed when missing or
stale, skipped when the digest matches). Any failure stops the run before anything is
created (exit 115, step 'lsm'): the payload never runs unconfined by mistake."""

from __future__ import annotations

from stockade.runner.codes import runner_error
from stockade.runner.plan import LsmPlan


def prepare(plan: LsmPlan) -> None:
    if plan.apparmor_profile and plan.apparmor_text:
        from stockade.lsm import apparmor

        try:
            apparmor.ensure_loaded(plan.apparmor_profile, plan.apparmor_text,
                                   plan.apparmor_digest)
        except apparmor.AppArmorLoadError as exc:
            raise runner_error("lsm", f"AppArmor profile '{plan.apparmor_profile}' "
                               f"cannot be loaded: {exc}") from exc
    if plan.selinux_label and plan.selinux_modules:
        from stockade.lsm import selinux

        try:
            selinux.ensure_installed(plan.selinux_modules, plan.selinux_digest)
        except selinux.SELinuxLoadError as exc:
            raise runner_error("lsm", f"SELinux module for '{plan.selinux_label}' cannot "
                               f"be installed: {exc}") from exc
