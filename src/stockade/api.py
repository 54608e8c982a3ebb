"""The Python API: `stockade.run([...], policy="default")`.

Light on purpose: importing this module pulls in neither the policy loader nor the
compilers; a policy given by name or path is served from the plan cache after its first
use (see stockade.runner.prepare).
"""

from __future__ import annotations

import os

from stockade.runner.launcher import RunResult
from stockade.runner.plan import Bind, Plan, PolicyPart, RunSpec

TYPE_CHECKING = False  # not typing's: the run path loads no typing (bench/shim_bench.py)
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from stockade.policy.model import Policy

__all__ = ["run", "plan", "RunResult"]

_PARTS: dict[str, PolicyPart] = {}  # policy digest -> resolved part (Policy objects only)


def _part(policy: str | Policy | PolicyPart, seccomp_bpf: bytes | None) -> PolicyPart:
    from stockade.runner import prepare

    if isinstance(policy, PolicyPart):
        return policy
    if isinstance(policy, str):
        if seccomp_bpf is not None:
            from stockade.policy.loader import load_policy

            return prepare.policy_part(load_policy(policy), seccomp_bpf=seccomp_bpf)
        return prepare.load_part(policy)
    key = policy.digest
    if key and seccomp_bpf is None and key in _PARTS:
        return _PARTS[key]
    part = prepare.policy_part(policy, seccomp_bpf=seccomp_bpf)
    if key and seccomp_bpf is None:
        _PARTS[key] = part
    return part


def plan(argv: Sequence[str], *, policy: str | Policy | PolicyPart = "default",
         rootfs: str | None = None, binds: Sequence[str | Bind] = (),
         env: Mapping[str, str] | None = None, cwd: str = "/", tty: bool = False,
         hostname: str | None = None, init: bool = True,
         seccomp_bpf: bytes | None = None) -> Plan:
    """The frozen plan `run` would execute (what `stockade run --dry-run` prints)."""
    from stockade.runner.plan import build_plan
    from stockade.runner.preflight import check

    part = _part(policy, seccomp_bpf)
    spec = RunSpec(
        argv=tuple(argv), env=tuple(sorted((env or {}).items())), rootfs=rootfs,
        binds=tuple(b if isinstance(b, Bind) else Bind.parse(b) for b in binds),
        cwd=cwd, tty=tty, hostname=hostname, init=init,
    )
    # The plan depends on the part, the spec, who we are, and where the rootfs and the
    # bind sources lead now (symlinks may move): all in the key, nothing else.
    key = (id(part), spec, os.geteuid(), os.getegid(),
           None if rootfs is None else os.path.realpath(rootfs),
           tuple(os.path.realpath(b.src) for b in spec.binds))
    hit = _PLANS.get(key)
    if hit is not None and hit[0] is part:
        p = hit[1]
    else:
        p = build_plan(part, spec)
        if len(_PLANS) >= 64:
            _PLANS.clear()
        _PLANS[key] = (part, p)
    check(p)
    return p


# (part id, spec, ids, resolved paths) -> (part, plan): a service running the same
# command again skips rebuilding ~30 frozen records. The part is kept so its id stays
# its own; plans are immutable.
_PLANS: dict[tuple[object, ...], tuple[PolicyPart, Plan]] = {}


def run(argv: Sequence[str], *, policy: str | Policy | PolicyPart = "default",
        rootfs: str | None = None, binds: Sequence[str | Bind] = (),
        env: Mapping[str, str] | None = None, cwd: str | None = None, tty: bool = False,
        hostname: str | None = None, init: bool = True, seccomp_bpf: bytes | None = None,
        forward_signals: bool = False, image: str | None = None, keep: bool = False,
        store: str | None = None) -> RunResult:
    """Run `argv` under `policy` and wait for it.

    policy: a preset name, a policy file path, a loaded Policy, or a PolicyPart.
    rootfs: a directory to use as / (default: the host's / read-only).
    binds: "SRC:DST[:ro]" strings or Bind objects. env: the payload's whole environment
    (nothing is inherited). seccomp_bpf: a pre-compiled filter instead of the compiler's.
    forward_signals: forward SIGINT/TERM/HUP/... (main thread only; the CLI sets it).
    image: NAME[:TAG] or ID of an image in the store (`store`, default $STOCKADE_STORE or
    /var/lib/stockade): the root is its layers, and its Entrypoint/Cmd, Env, WorkingDir
    and User apply unless `argv` (may be empty), `env`, `cwd` override them; the policy
    still decides (refusals are in RunResult.notes). The writable layer is removed at the
    end unless `keep`. Excludes `rootfs`.

    Returns a RunResult (exit_code is the payload's status or 128+signal). Raises
    stockade.errors.RunnerError (with .step and .exit_code) when a step failed: the
    payload then never ran and nothing is left behind.
    """
    from stockade.runner.launcher import launch

    if image is not None:
        return _run_image(argv, image, policy=policy, rootfs=rootfs, binds=binds, env=env,
                          cwd=cwd, tty=tty, hostname=hostname, init=init,
                          seccomp_bpf=seccomp_bpf, forward_signals=forward_signals,
                          keep=keep, store=store)
    p = plan(argv, policy=policy, rootfs=rootfs, binds=binds, env=env, cwd=cwd or "/", tty=tty,
             hostname=hostname, init=init, seccomp_bpf=seccomp_bpf)
    return launch(p, forward_signals=forward_signals)


def _run_image(argv: Sequence[str], image: str, *, policy: str | Policy | PolicyPart,
               rootfs: str | None, binds: Sequence[str | Bind], env: Mapping[str, str] | None,
               cwd: str | None, tty: bool, hostname: str | None, init: bool,
               seccomp_bpf: bytes | None, forward_signals: bool, keep: bool,
               store: str | None) -> RunResult:
    from stockade.runner import image_source
    from stockade.runner.codes import runner_error

    if rootfs is not None:
        raise runner_error("preflight", "an image and a rootfs exclude each other")
    part = _part(policy, seccomp_bpf)
    parsed = [b if isinstance(b, Bind) else Bind.parse(b) for b in binds]
    with image_source.open_image(image, argv, part, env=env, keep=keep, store=store) as img:
        return image_source.run_image(img, part, binds=parsed, cwd=cwd, tty=tty,
                                      hostname=hostname, init=init,
                                      forward_signals=forward_signals)
