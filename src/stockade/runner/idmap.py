"""uid/gid maps for the container's user namespace, written by the runtime.

Root: the policy's explicit mapping or a range of the id pool that no other sandbox holds
(runner.idalloc; never the identity map, so root inside is an unprivileged id outside),
in a namespace that range owns (the executor clones as its owner: identity.owner).
Unprivileged: newuidmap/newgidmap with the invoker's /etc/subuid range when present,
else a one-id map with setgroups denied
(CVE-2014-8989: an unprivileged map must not let the child drop groups that deny access).
"""

from __future__ import annotations

import os

from stockade.runner.plan import IdentityPlan, IdMap


class IdmapError(Exception):
    pass


def _fmt(maps: tuple[IdMap, ...]) -> str:
    return "".join(f"{m.inside} {m.outside} {m.count}\n" for m in maps)


def write_maps(pid: int, ident: IdentityPlan) -> None:
    if not ident.userns:
        return
    if ident.helper == "newuidmap":
        import subprocess  # only on this path: keep the common path light

        for tool, maps in (("newuidmap", ident.uid_map), ("newgidmap", ident.gid_map)):
            args = [tool, str(pid)]
            for m in maps:
                args += [str(m.inside), str(m.outside), str(m.count)]
            try:
                res = subprocess.run(args, capture_output=True, text=True, timeout=10)
            except (OSError, subprocess.TimeoutExpired) as exc:
                raise IdmapError(f"{tool}: {exc}") from exc
            if res.returncode != 0:
                raise IdmapError(f"{tool} failed: {res.stderr.strip()}")
        return
    base = f"/proc/{pid}"
    try:
        _write(f"{base}/uid_map", _fmt(ident.uid_map))
        if ident.setgroups == "deny":
            _write(f"{base}/setgroups", "deny")
        _write(f"{base}/gid_map", _fmt(ident.gid_map))
    except OSError as exc:
        raise IdmapError(f"{exc.filename}: {exc.strerror}") from exc


def _write(path: str, data: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, data.encode())
    finally:
        os.close(fd)


def host_subids(euid: int) -> tuple[IdMap, IdMap] | None:
    """The invoker's first /etc/subuid and /etc/subgid ranges (by name, else by number)
    when newuidmap and newgidmap are installed; None otherwise (a one-id map then)."""
    import pwd
    import shutil

    if shutil.which("newuidmap") is None or shutil.which("newgidmap") is None:
        return None
    names: tuple[str, ...] = (str(euid),)  # no account: /etc/subuid may name the number
    try:  # noqa: SIM105 - no contextlib on the run path
        names = (pwd.getpwuid(euid).pw_name, str(euid))
    except KeyError:
        pass
    uids = next((r for r in (subid_range(n, "/etc/subuid") for n in names) if r), None)
    gids = next((r for r in (subid_range(n, "/etc/subgid") for n in names) if r), None)
    return None if uids is None or gids is None else (uids, gids)


def subid_range(user: str, path: str) -> IdMap | None:
    """The first /etc/subuid-style range for `user` (name or number)."""
    try:
        with open(path) as fh:
            for line in fh:
                parts = line.strip().split(":")
                if len(parts) == 3 and parts[0] == user:
                    return IdMap(0, int(parts[1]), int(parts[2]))
    except (OSError, ValueError):
        return None
    return None


_ID_FILES = ("/etc/passwd", "/etc/group", "/etc/subuid", "/etc/subgid")


def _stamps() -> tuple[tuple[int, int, int] | None, ...]:
    out: list[tuple[int, int, int] | None] = []
    for path in _ID_FILES:
        try:
            st = os.stat(path)
            out.append((st.st_mtime_ns, st.st_size, st.st_ino))
        except OSError:
            out.append(None)
    return tuple(out)


def range_conflict(lo: int, hi: int) -> str | None:
    """Why host ids [lo, hi) must not be mapped (an account in /etc/passwd or /etc/group,
    a subordinate range in /etc/subuid or /etc/subgid), or None."""
    for start, count, why in reserved_ids():
        if start < hi and lo < start + count:
            return why
    return None


def reserved_ids() -> tuple[tuple[int, int, str], ...]:
    """(start, count, why) of every id the host gives to someone.

    Read before every run as root; the answer is kept while the four files keep their
    mtime, size and inode (a service launching many sandboxes stats, not parses)."""
    stamps = _stamps()
    memo: tuple[object, tuple[tuple[int, int, str], ...]] | None = getattr(
        reserved_ids, "memo", None)
    if memo is not None and memo[0] == stamps:
        return memo[1]
    found = _read_reserved()
    reserved_ids.memo = (stamps, found)  # type: ignore[attr-defined]
    return found


def _read_reserved() -> tuple[tuple[int, int, str], ...]:
    found: list[tuple[int, int, str]] = []
    for path in ("/etc/passwd", "/etc/group"):
        try:
            with open(path) as fh:
                for line in fh:
                    parts = line.split(":")
                    if len(parts) > 2 and parts[2].isdigit():
                        found.append((int(parts[2]), 1, f"{path} has id {parts[2]}"))
        except OSError:
            continue
    for path in ("/etc/subuid", "/etc/subgid"):
        try:
            with open(path) as fh:
                for line in fh:
                    parts = line.strip().split(":")
                    if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
                        found.append((int(parts[1]), int(parts[2]),
                                      f"{path} has range {parts[1]}:{parts[2]}"))
        except OSError:
            continue
    return tuple(found)
