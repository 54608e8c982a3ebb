"""One call for `stockade run --image` (and `oci spec --image`, `learn --image`): the root
from the store and the process the image proposes, with the policy's limits applied.

Plain arguments, no Policy import: the runner passes what its PolicyPart holds
(user_uid, user_gid, fs_root == "read-only", no_new_privs).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from stockade.image.process import ResolvedProcess, RootView, resolve_process
from stockade.image.rootfs import PreparedRootfs, describe_rootfs, prepare_rootfs
from stockade.image.store import ImageRecord, Store


@dataclass(frozen=True)
class _Identity:
    uid: int
    gid: int


@dataclass(frozen=True)
class ImageRun:
    """`rootfs` is None for a dry run (nothing mounted); `lines` is what --dry-run prints."""

    image: ImageRecord
    process: ResolvedProcess
    rootfs: PreparedRootfs | None
    lines: tuple[str, ...]

    @property
    def rootfs_path(self) -> str | None:
        return str(self.rootfs.path) if self.rootfs is not None else None

    def __enter__(self) -> ImageRun:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        if self.rootfs is not None:
            self.rootfs.close()


def image_for_run(
    ref: str,
    cli_cmd: Sequence[str],
    *,
    uid: int,
    gid: int,
    read_only: bool,
    no_new_privileges: bool = True,
    keep: bool = False,
    dry_run: bool = False,
    cli_env: Sequence[str] = (),
    cli_entrypoint: Sequence[str] | None = None,
    store: Store | None = None,
    store_root: Path | None = None,
    method: str = "auto",
) -> ImageRun:
    """Prepare image `ref` for one container. Raises StockadeError (exit 2) for an unknown
    image or a command the image cannot supply; mounts nothing when `dry_run`."""
    store = store or Store(store_root)
    image = store.resolve(ref)
    privileges = store.privileged_files(image)

    def resolve(root: RootView) -> ResolvedProcess:
        return resolve_process(image.config, cli_cmd, _Identity(uid, gid), rootfs=root,
                               cli_entrypoint=cli_entrypoint, cli_env=cli_env,
                               image_privileges=privileges, no_new_privileges=no_new_privileges)

    if dry_run:
        proc = resolve(functools.partial(store.read_file, image))
        head = describe_rootfs(store, ref, read_only=read_only, method=method)
        return ImageRun(image, proc, None, (head, *_refused(proc)))
    rootfs = prepare_rootfs(store, image.id, read_only=read_only, keep=keep, method=method)
    try:
        proc = resolve(rootfs.path)
    except BaseException:
        rootfs.close()
        raise
    head = f"image {ref} ({image.short_id}): rootfs {rootfs.method} at {rootfs.path}"
    notes = (f"note: {rootfs.note}",) if rootfs.note else ()
    return ImageRun(image, proc, rootfs, (head, *notes, *_refused(proc)))


def _refused(proc: ResolvedProcess) -> tuple[str, ...]:
    return tuple(f"refused: {r}" for r in proc.refusals)
