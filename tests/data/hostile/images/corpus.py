"""Hostile image layers, built byte by byte with tarfile (nothing big is committed).

Each builder returns an uncompressed layer tar; `archive()` wraps layers in a docker-save
archive (stockade.image.export). Host paths that an attack aims at are parameters, so a
test can point them at a scratch file it watches. Run as a script to write every case as
a docker-save archive into a directory (for trying `stockade image load` by hand):

    .venv/bin/python tests/data/hostile/images/corpus.py OUTDIR

The cases and what stockade must do with them (tests/unit/image/test_hostile.py checks it):

    chmod_through_symlink     dir `d` 06777, then symlink `d` -> host file: the finishing pass
                              of the unpacker must not chmod the host file (issue 13)
    chmod_through_chain       the same through a chain of relative links whose text stays in
                              the root (so the static target check passes) but which climb out
    chmod_nested_through_parent  dir `a/b` 06777, then `a` -> host directory holding `b`
    hardlink_symlink_to_host  symlink `s` -> host file, hardlink `h` -> `s`: link(2) must link
                              the symlink, never the host file (as root: /etc/shadow in a layer)
    write_through_symlink     `s` -> host dir, then file `s/evil`
    whiteout_through_symlink  `s` -> host dir, then `s/.wh.victim` (a 0/0 device over it, as root)
    opaque_through_symlink    `s` -> host dir, then `s/.wh..wh..opq` (trusted.* xattr on it)
    gzip_bomb                 (archive-level: gzip of zeros) size limit while streaming
    deep_tree                 directories `d/d/d/...` N deep: depth limit, no RecursionError
    many_entries              N empty files: entry limit
    long_path                 one name longer than the path limit
    huge_pax_header           a pax header of N bytes: refused before tarfile buffers it
    sparse_file               a sparse member: its holes count against the size limit
"""

from __future__ import annotations

import io
import sys
import tarfile
from collections.abc import Callable, Iterable
from pathlib import Path

from stockade.image import export

MTIME = 1_700_000_000


def _tar(members: Iterable[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            info.mtime = MTIME
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def _dir(name: str, mode: int = 0o755) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type, info.mode = tarfile.DIRTYPE, mode
    return info, None


def _link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = kind, target, 0o777
    return info, None


def _file(name: str, data: bytes = b"", mode: int = 0o644) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.mode = mode
    return info, data


def chmod_through_symlink(target: str) -> bytes:
    return _tar([_dir("d", 0o6777), _link("d", target)])


def chmod_through_chain(target: str, levels: int = 30) -> bytes:
    """`a1/.../aN/r -> ../..` (N times: the root), `aN/e -> r/../..` (N times) + target: as
    text both stay inside the root; followed, `e` climbs N levels above it, then to target."""
    chain = "/".join(f"a{i}" for i in range(1, levels + 1))
    members = [_dir("/".join(f"a{i}" for i in range(1, n + 1))) for n in range(1, levels + 1)]
    members += [
        _link(f"{chain}/r", "/".join([".."] * levels)),
        _link(f"{chain}/e", "r/" + "/".join([".."] * levels) + "/" + target.lstrip("/")),
        _dir("d", 0o6777),
        _link("d", f"{chain}/e"),
    ]
    return _tar(members)


def chmod_nested_through_parent(host_dir: str) -> bytes:
    return _tar([_dir("a"), _dir("a/b", 0o6777), _link("a", host_dir)])


def hardlink_symlink_to_host(target: str) -> bytes:
    return _tar([_link("s", target), _link("h", "s", tarfile.LNKTYPE)])


def write_through_symlink(host_dir: str) -> bytes:
    return _tar([_link("s", host_dir), _file("s/evil", b"evil")])


def whiteout_through_symlink(host_dir: str, victim: str) -> bytes:
    return _tar([_link("s", host_dir), _file(f"s/.wh.{victim}")])


def opaque_through_symlink(host_dir: str) -> bytes:
    return _tar([_link("s", host_dir), _file("s/.wh..wh..opq")])


def zeros(size: int) -> bytes:
    """One file of `size` zero bytes: gzip makes ~1 kB of each MB."""
    return _tar([_file("zeros", bytes(size))])


def deep_tree(depth: int) -> bytes:
    return _tar(_dir("/".join(["d"] * n)) for n in range(1, depth + 1))


def many_entries(count: int) -> bytes:
    return _tar(_file(f"f{i}") for i in range(count))


def long_path(length: int) -> bytes:
    return _tar([_file("x" * length)])


def huge_pax_header(size: int) -> bytes:
    info, data = _file("f", b"x")
    info.pax_headers = {"comment": "x" * size}
    return _tar([(info, data)])


def sparse_file(size: int) -> bytes:
    """A GNU sparse member (pax format 0.1): one stored byte, `size` bytes once written."""
    info, data = _file("sparse", b"x")
    info.pax_headers = {"GNU.sparse.map": "0,1", "GNU.sparse.size": str(size)}
    return _tar([(info, data)])


def archive(dest: Path, layers: list[bytes], name: str = "hostile/image:1") -> Path:
    """A docker-save archive of `layers` whose digests are all correct."""
    return export.write_tar(dest, export.docker_archive_files(layers, {}, repo_tags=[name]))


CASES: dict[str, Callable[[], bytes]] = {  # for the script: host paths it aims at are made up
    "chmod-through-symlink": lambda: chmod_through_symlink("/tmp/stockade-victim"),
    "chmod-through-chain": lambda: chmod_through_chain("/tmp/stockade-victim"),
    "chmod-nested-through-parent": lambda: chmod_nested_through_parent("/tmp"),
    "hardlink-symlink-to-host": lambda: hardlink_symlink_to_host("/etc/shadow"),
    "write-through-symlink": lambda: write_through_symlink("/tmp"),
    "whiteout-through-symlink": lambda: whiteout_through_symlink("/tmp", "stockade-victim"),
    "opaque-through-symlink": lambda: opaque_through_symlink("/tmp"),
    "deep-tree-2000": lambda: deep_tree(2000),
    "long-path-5000": lambda: long_path(5000),
    "huge-pax-header-2m": lambda: huge_pax_header(2 << 20),
}


if __name__ == "__main__":
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    for case, build in CASES.items():
        print(archive(out / f"{case}.tar", [build()], f"hostile/{case}:1"))
