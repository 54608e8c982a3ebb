"""`stockade run --image`: the root and the process come from an image in the store.

The image proposes (Entrypoint/Cmd, Env, WorkingDir, User), the command line overrides
(`-- CMD`, `--env`, `--cwd`), and the policy decides: stockade.image.process refuses what
the policy does not grant (root or another identity under a non-root policy, set-id files
under no_new_privs), and every refusal is reported. Everything about confinement
(namespaces, caps, seccomp, cgroup, mounts) is the policy's alone; the image only chooses
the payload's identity inside the limits the policy allows, so an image can lower its
privileges (USER nobody under a root policy) but never raise them.

The root is prepared from the store (stockade.image.rootfs: overlayfs with a per-container
upper layer, or a read-only lower stack for `filesystem.root: read-only`), never from the
archive, and removed when the payload has ended, unless `keep`. As root the launcher
rebuilds that overlay on idmapped layers (runner.idmount, Plan.idmap_root), so the
image's root-owned files are root's inside, as in Docker.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from stockade.runner._record import replace
from stockade.runner.launcher import RunResult
from stockade.runner.plan import Bind, Plan, PolicyPart, RunSpec, build_plan

TYPE_CHECKING = False  # not typing's: the run path loads no typing (bench/shim_bench.py)
if TYPE_CHECKING:
    from stockade.image.run import ImageRun

# Refusals about files the image ships (set-id, file caps) can be many on a distribution
# image; the CLI prints them as one line (all of them are in --dry-run and the report).
FILE_REFUSAL = "image file "


def _env_list(env: Mapping[str, str] | None) -> list[str]:
    return [f"{k}={v}" for k, v in (env or {}).items()]


def open_image(ref: str, argv: Sequence[str], part: PolicyPart, *,
               env: Mapping[str, str] | None = None, keep: bool = False,
               dry_run: bool = False, store: str | None = None,
               entrypoint: Sequence[str] | None = None) -> ImageRun:
    """Resolve `ref` in the store and, unless `dry_run`, prepare its root (the caller
    closes the returned ImageRun: unmount, and remove the writable layer unless `keep`).
    Docker's rules: `argv` (`-- CMD`) replaces the image's Cmd; `entrypoint` (None: the
    image's) replaces its Entrypoint, and then the image's Cmd is not used either.
    Raises StockadeError (exit 2) for an unknown image or nothing to run."""
    from pathlib import Path

    from stockade.image.run import image_for_run

    return image_for_run(
        ref, list(argv), uid=part.user_uid, gid=part.user_gid,
        # a read-only policy root needs no upper layer: a read-only lower stack
        read_only=part.fs_root != "writable", no_new_privileges=part.no_new_privs,
        keep=keep, dry_run=dry_run, cli_env=_env_list(env), cli_entrypoint=entrypoint,
        store_root=Path(store) if store else None,
    )


def image_spec(img: ImageRun, part: PolicyPart, *, rootfs: str, binds: Sequence[Bind] = (),
               cwd: str | None = None, tty: bool = False, hostname: str | None = None,
               init: bool = True) -> tuple[PolicyPart, RunSpec]:
    """The policy part with the payload's identity from the resolved process, and the
    invocation. `cwd` (the command line's) overrides the image's WorkingDir."""
    proc = img.process
    if (proc.uid, proc.gid) != (part.user_uid, part.user_gid):
        # resolve_process only ever lowers privileges or keeps the policy's identity
        part = replace(part, user_uid=proc.uid, user_gid=proc.gid)
    env = tuple(sorted(dict(e.split("=", 1) for e in proc.env).items()))
    spec = RunSpec(argv=tuple(proc.argv), env=env, rootfs=rootfs, binds=tuple(binds),
                   cwd=cwd or proc.cwd, tty=tty, hostname=hostname, init=init)
    return part, spec


def image_notes(img: ImageRun) -> tuple[str, ...]:
    notes = [f"image: refused: {r}" for r in img.process.refusals]
    if img.rootfs is not None and img.rootfs.note:
        notes.append(f"image: {img.rootfs.note}")
    if img.rootfs is not None and img.rootfs.keep:
        notes.append(f"image: container {img.rootfs.container_id} kept in "
                     f"{img.rootfs.container_dir}")
    return tuple(notes)


def dry_run_plan(img: ImageRun, part: PolicyPart, *, store: str | None = None,
                 binds: Sequence[Bind] = (), cwd: str | None = None, tty: bool = False,
                 hostname: str | None = None, init: bool = True) -> Plan:
    """The plan `run --image --dry-run` prints: nothing is mounted, so the root is where
    the container directory would be; every preflight check but the rootfs one runs."""
    from stockade.image.store import default_root
    from stockade.runner import preflight

    placeholder = os.path.join(store or default_root(), "containers", "NEW", "merged")
    p2, spec = image_spec(img, part, rootfs=placeholder, binds=binds, cwd=cwd, tty=tty,
                          hostname=hostname, init=init)
    plan = replace(build_plan(p2, spec), idmap_root=True)  # as run_image's
    for check in preflight.CHECKS:
        if check.__name__ != "_rootfs":  # the root does not exist before the run
            check(plan)
    return plan


def run_image(img: ImageRun, part: PolicyPart, *, binds: Sequence[Bind] = (),
              cwd: str | None = None, tty: bool = False, hostname: str | None = None,
              init: bool = True, forward_signals: bool = False) -> RunResult:
    """Run the prepared image (the caller owns `img` and closes it afterwards)."""
    from stockade.runner import preflight
    from stockade.runner.launcher import launch

    assert img.rootfs_path is not None, "run_image needs a prepared root (not a dry run)"
    p2, spec = image_spec(img, part, rootfs=img.rootfs_path, binds=binds, cwd=cwd, tty=tty,
                          hostname=hostname, init=init)
    plan = replace(build_plan(p2, spec), idmap_root=True)  # runner.idmount
    preflight.check(plan)
    result = launch(plan, forward_signals=forward_signals)
    return replace(result, notes=(*result.notes, *image_notes(img)))
