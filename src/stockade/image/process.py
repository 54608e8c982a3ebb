"""The image proposes, the command line overrides, the policy decides.

`resolve_process` turns an ImageConfig plus the `-- CMD` of `stockade run` into the argv,
environment, working directory and identity the runner starts, and lists every wish of the
image that was refused, for `run --dry-run` to print.
"""

from __future__ import annotations

import errno
import os
import posixpath
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple, Protocol

from stockade.errors import StockadeError
from stockade.image.config import ImageConfig

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
MAX_DB = 1 << 20


class PolicyUser(Protocol):
    """What is needed of the policy's `user` section (stockade.policy.model.User fits)."""

    @property
    def uid(self) -> int: ...

    @property
    def gid(self) -> int: ...


class ResolvedProcess(NamedTuple):
    argv: list[str]
    env: list[str]
    cwd: str
    uid: int
    gid: int
    refusals: list[str]


def read_in_root(root: Path, rel: str) -> bytes | None:
    """Read a small file of an image rootfs without following any symlink: the rootfs is
    attacker-controlled, and /etc/passwd -> /host/etc/shadow must not be read on the host."""
    parts = [p for p in rel.split("/") if p]
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | (0 if last else os.O_DIRECTORY)
            try:
                nfd = os.open(part, flags, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ENOENT, errno.ELOOP, errno.ENOTDIR):
                    return None
                raise
            os.close(fd)
            fd = nfd
        with os.fdopen(os.dup(fd), "rb") as f:
            return f.read(MAX_DB)
    finally:
        os.close(fd)


FileReader = Callable[[str], "bytes | None"]
RootView = Path | FileReader | None  # a prepared root, Store.read_file bound to an image, or nothing


def _db(root: RootView, rel: str) -> list[list[str]]:
    if root is None:
        data = None
    elif isinstance(root, Path):
        data = read_in_root(root, rel)
    else:
        data = root(rel)
    if data is None:
        return []
    return [line.split(":") for line in data.decode("utf-8", "replace").splitlines()
            if line and not line.startswith("#")]


def _lookup_user(spec: str, root: RootView) -> tuple[int, int | None, str]:
    """(uid, primary gid or None, home) for `name` or `uid`; KeyError if unknown."""
    for row in _db(root, "etc/passwd"):
        if len(row) >= 4 and (row[0] == spec or row[2] == spec) and row[2].isdigit() and row[3].isdigit():
            return int(row[2]), int(row[3]), row[5] if len(row) > 5 else "/"
    if spec.isdigit():
        return int(spec), None, "/"
    raise KeyError(spec)


def _lookup_group(spec: str, root: RootView) -> int:
    if spec.isdigit():
        return int(spec)
    for row in _db(root, "etc/group"):
        if len(row) >= 3 and row[0] == spec and row[2].isdigit():
            return int(row[2])
    raise KeyError(spec)


def _image_identity(cfg: ImageConfig, root: RootView) -> tuple[int, int, str] | str:
    """The uid/gid/home the image asks for, or a reason it cannot be resolved."""
    user, _, group = (cfg.user or "0").partition(":")
    try:
        uid, gid, home = _lookup_user(user, root)
    except KeyError:
        return f"image User {cfg.user!r}: no such user in the image's /etc/passwd"
    if group:
        try:
            gid = _lookup_group(group, root)
        except KeyError:
            return f"image User {cfg.user!r}: no such group in the image's /etc/group"
    return uid, gid if gid is not None else uid, home


def _identity(cfg: ImageConfig, policy: PolicyUser, root: RootView, refusals: list[str]) -> tuple[int, int, str]:
    # An image may lower privileges (root policy, USER nobody) but never raise them or pick
    # another identity than a non-root policy names.
    wanted = _image_identity(cfg, root)
    if isinstance(wanted, str):
        refusals.append(f"{wanted}; running as the policy's uid {policy.uid}, gid {policy.gid}")
        return policy.uid, policy.gid, "/"
    uid, gid, home = wanted
    if policy.uid == 0 or (uid, gid) == (policy.uid, policy.gid):
        if policy.gid != 0 and gid == 0:
            refusals.append(f"image asks for gid 0; the policy runs as gid {policy.gid}")
            gid = policy.gid
        return uid, gid, home
    if cfg.user:
        what = "root" if uid == 0 else f"uid {uid}, gid {gid}"
        refusals.append(f"image User {cfg.user!r} asks for {what}; the policy runs as uid "
                        f"{policy.uid}, gid {policy.gid}")
    return policy.uid, policy.gid, "/"


def _cwd(cfg: ImageConfig, refusals: list[str]) -> str:
    wd = cfg.working_dir or "/"
    if not wd.startswith("/") or ".." in wd.split("/"):
        refusals.append(f"image WorkingDir {wd!r} is not an absolute path inside the root; using /")
        return "/"
    return posixpath.normpath(wd) if wd != "/" else "/"


def resolve_process(
    image_config: ImageConfig,
    cli_cmd: Sequence[str],
    policy_user: PolicyUser,
    *,
    rootfs: RootView = None,
    cli_entrypoint: Sequence[str] | None = None,
    cli_env: Sequence[str] = (),
    image_privileges: Sequence[str] = (),
    no_new_privileges: bool = True,
) -> ResolvedProcess:
    """Docker's rules for argv (Entrypoint + (CMD from the command line, else Cmd);
    `cli_entrypoint` replaces the Entrypoint, `[]` clears it), image Env then `cli_env`,
    WorkingDir, and the image's User only where the policy allows it.

    `rootfs` is read for /etc/passwd and /etc/group, without following symlinks: the
    prepared root (a Path), or for `--dry-run` without mounting,
    `functools.partial(store.read_file, record)`; without it only numeric users resolve.

    `image_privileges` (Store.privileged_files: set-id files, file capabilities) are listed
    as refused: the runner's no_new_privs and bounding set neutralise them.
    Raises StockadeError when nothing is left to run."""
    refusals: list[str] = []
    # Images cannot ask for capabilities in their config; what they can ship is set-id
    # binaries and file capabilities (`image_privileges`, from Store.privileged_files).
    for wish in image_privileges:
        refusals.append(f"image file {wish}: ignored, no_new_privileges is set" if no_new_privileges
                        else f"image file {wish}: limited to the policy's capability set")
    entry = list(image_config.entrypoint if cli_entrypoint is None else cli_entrypoint)
    # Docker's merge (moby runconfig): a given, non-empty Entrypoint drops the image's Cmd
    argv = entry + list(cli_cmd or ([] if cli_entrypoint else image_config.cmd))
    if not argv or not argv[0]:
        raise StockadeError("the image has no Entrypoint or Cmd and no command was given "
                            "(add `-- CMD ARGS`)")
    uid, gid, home = _identity(image_config, policy_user, rootfs, refusals)
    env: dict[str, str] = {"PATH": DEFAULT_PATH, "HOME": home or "/"}
    for item in (*image_config.env, *cli_env):
        key, _, value = item.partition("=")
        env[key] = value
    return ResolvedProcess(
        argv=argv,
        env=[f"{k}={v}" for k, v in env.items()],
        cwd=_cwd(image_config, refusals),
        uid=uid,
        gid=gid,
        refusals=refusals,
    )
