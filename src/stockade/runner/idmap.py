"""uid/gid maps for the child's user namespace, written by the parent.

Root: the policy's explicit mapping or an unused range (never the identity map, so root
inside is an unprivileged id outside). Unprivileged: newuidmap/newgidmap with the
invoker's /etc/subuid range when present, else a one-id map with setgroups denied
(CVE-2014-8989: an unprivileged map must not let the child drop groups that deny access).
"""

from __future__ import annotations

import os

from stockade.runner.plan import AUTO_RANGE_BASE, AUTO_RANGE_COUNT, IdentityPlan, IdMap


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


def auto_range_is_free() -> str | None:
    """None when AUTO_RANGE is used by no account or subordinate range; else why not.

    Checked before every run as root; the answer is kept while the four files keep
    their mtime, size and inode (a service launching many sandboxes stats, not parses)."""
    stamps = _stamps()
    memo: tuple[object, str | None] | None = getattr(auto_range_is_free, "memo", None)
    if memo is not None and memo[0] == stamps:
        return memo[1]
    why = _auto_range_check()
    auto_range_is_free.memo = (stamps, why)  # type: ignore[attr-defined]
    return why


def _auto_range_check() -> str | None:
    lo, hi = AUTO_RANGE_BASE, AUTO_RANGE_BASE + AUTO_RANGE_COUNT
    for path, idx in (("/etc/passwd", 2), ("/etc/group", 2)):
        try:
            with open(path) as fh:
                for line in fh:
                    parts = line.split(":")
                    if len(parts) > idx and parts[idx].isdigit() and lo <= int(parts[idx]) < hi:
                        return f"{path} has id {parts[idx]} inside the runner's range"
        except OSError:
            continue
    for path in ("/etc/subuid", "/etc/subgid"):
        try:
            with open(path) as fh:
                for line in fh:
                    parts = line.strip().split(":")
                    if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
                        start, count = int(parts[1]), int(parts[2])
                        if start < hi and lo < start + count:
                            return f"{path} range {start}:{count} overlaps the runner's range"
        except OSError:
            continue
    return None
