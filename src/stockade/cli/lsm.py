"""`stockade lsm status|load|unload`: the kernel side of a policy's LSM confinement, for
users who manage profiles themselves (`stockade run` loads what it needs by itself).

  status [--policy P]   which LSMs are active; with a policy, whether its AppArmor
                        profile / SELinux module is in the kernel and current
  load --policy P       load the policy's profile / install its module (when stale)
  unload --policy P     remove them
"""

from __future__ import annotations

import argparse

from stockade.errors import StockadeError


class LsmCommandError(StockadeError):
    """An LSM operation the kernel or its tools refused (exit 1: the environment)."""

    def __init__(self, message: str) -> None:
        super().__init__(f"stockade lsm: {message}", exit_code=1)


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    for name, help_text in (("status", "which LSMs are active; a policy's profile/module state"),
                            ("load", "load the policy's AppArmor profile / SELinux module"),
                            ("unload", "remove the policy's AppArmor profile / SELinux module")):
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--policy", required=name != "status",
                       help="policy file or preset name")
        p.add_argument("--only", choices=("apparmor", "selinux"),
                       help="one LSM only (default: each the policy names and the host runs)")


def _wanted(args: argparse.Namespace, lsm: str, named: bool, active: bool) -> bool:
    if args.only is not None:
        return args.only == lsm
    return named and active


def main(args: argparse.Namespace) -> int:
    from stockade.linux.hostfacts import HostFacts
    from stockade.lsm import apparmor, selinux
    from stockade.lsm.compiled import lsm_plan

    host = HostFacts.detect()
    active = host.lsms
    aa_unavailable = apparmor.unavailable_reason()
    print(f"apparmor: {'inactive: ' + aa_unavailable if aa_unavailable else 'active'}")
    se_state = "inactive" if host.selinux_mode == "disabled" else f"active, {host.selinux_mode}"
    print(f"selinux:  {se_state}")
    if args.policy is None:
        return 0
    from stockade.policy.loader import load_policy

    policy = load_policy(args.policy)
    use_aa = _wanted(args, "apparmor", policy.lsm.apparmor is not None, "apparmor" in active)
    use_se = _wanted(args, "selinux", policy.lsm.selinux is not None, "selinux" in active)
    if not (use_aa or use_se):
        print(f"policy '{policy.name}': names no LSM that is active here: nothing to do")
        return 0
    plan = lsm_plan(policy, host, apparmor=use_aa, selinux=use_se)
    try:
        if plan.apparmor_profile:
            _apparmor(args.action, plan.apparmor_profile, plan.apparmor_text,
                      plan.apparmor_digest)
        if plan.selinux_label:
            _selinux(args.action, plan.selinux_modules, plan.selinux_digest)
    except (apparmor.AppArmorLoadError, selinux.SELinuxLoadError) as exc:
        raise LsmCommandError(str(exc)) from exc
    return 0


def _apparmor(action: str, name: str, text: str, digest: str) -> None:
    from stockade.lsm import apparmor

    if action == "load":
        loaded = apparmor.ensure_loaded(name, text, digest)
        print(f"apparmor profile '{name}': {'loaded' if loaded else 'already current'}")
    elif action == "unload":
        gone = apparmor.unload(name)
        print(f"apparmor profile '{name}': {'removed' if gone else 'was not loaded'}")
    else:
        held = apparmor.kernel_profile(name)
        if held is None:
            print(f"apparmor profile '{name}': not loaded")
        else:
            fresh = "current" if apparmor.is_current(name, digest) else "stale or loaded by another tool"
            print(f"apparmor profile '{name}': loaded ({held.mode}), {fresh}")


def _selinux(action: str, modules: tuple[tuple[str, str], ...], digest: str) -> None:
    from stockade.lsm import selinux

    name = selinux.policy_module(modules)
    if action == "load":
        done = selinux.ensure_installed(modules, digest)
        print(f"selinux module '{name}': {'installed' if done else 'already current'}")
    elif action == "unload":
        gone = selinux.remove(name)
        print(f"selinux module '{name}': {'removed' if gone else 'was not installed'}"
              " (the template module stays: other policies use it)")
        selinux.remove(f"{name}_launch")
    else:
        state = ("current" if selinux.is_current(modules, digest) else
                 "installed, stale or installed by another tool"
                 if selinux.module_installed(name) else "not installed")
        print(f"selinux module '{name}': {state}")
