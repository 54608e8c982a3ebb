"""`filesystem`: the root's mode (the last layer that sets it) and the path lists, unioned
in order of first mention (a path named again keeps its first location)."""

from __future__ import annotations

from stockade.errors import Location, PolicyError
from stockade.policy import model as m
from stockade.policy.layers import Layer

PATH_LISTS = ("read_only", "writable", "exec", "deny", "tmpfs", "expose")


def absolute_path(p: str, loc: Location) -> str:
    if not p.startswith("/"):
        raise PolicyError(loc, "path must be absolute", found=repr(p), expected="a path starting with /",
                          suggestion=f"did you mean '/{p}'?")
    if "\0" in p or "\n" in p:
        raise PolicyError(loc, "path contains a control character", found=repr(p))
    parts = p.split("/")
    if ".." in parts or "." in parts[1:]:
        raise PolicyError(loc, "path must be normalised", found=repr(p), expected="no '.' or '..' components")
    return p.rstrip("/") or "/"


class FilesystemMerger:
    def __init__(self) -> None:
        self._root = "read-only"
        self._lists: dict[str, list[m.PathEntry]] = {key: [] for key in PATH_LISTS}

    def add(self, layer: Layer) -> None:
        fs = layer.spec.filesystem
        if fs is None:
            return
        if fs.root is not None:
            self._root = fs.root
        for key, entries in self._lists.items():
            for i, p in enumerate(getattr(fs, key)):
                loc = layer.loc("filesystem", key, i)
                path = absolute_path(p, loc)
                if all(e.path != path for e in entries):
                    entries.append(m.PathEntry(path, loc))

    def result(self) -> m.Filesystem:
        return m.Filesystem(root=self._root, read_only=tuple(self._lists["read_only"]),
                            writable=tuple(self._lists["writable"]), exec=tuple(self._lists["exec"]),
                            deny=tuple(self._lists["deny"]), tmpfs=tuple(self._lists["tmpfs"]),
                            expose=tuple(self._lists["expose"]))
