"""Images built byte by byte with stockade.image.export, shared by the image unit tests."""

from __future__ import annotations

from stockade.image.export import layer_tar
from stockade.image.store import Store

# Bottom layer: the files the upper layer deletes, hides and replaces.
BASE = layer_tar([
    ("etc", "dir"),
    ("etc/keep", "file", "keep"),
    ("etc/gone", "file", "gone"),
    ("opq", "dir"),
    ("opq/old", "file", "old"),
    ("opq/sub", "dir"),
    ("opq/sub/deep", "file", "deep"),
    ("bin", "dir"),
    ("bin/x", "file", "x1"),
    ("bin/hard", "hardlink", "bin/x"),
    ("link", "symlink", "/etc/keep"),
    ("rel", "symlink", "etc/keep"),
])
# Upper layer: a whiteout, an opaque directory, a replaced file, a new directory.
UPPER = layer_tar([
    ("etc/gone", "whiteout"),
    ("opq", "opaque"),
    ("opq/new", "file", "new"),
    ("bin/x", "file", "x2"),
    ("newdir", "dir"),
    ("newdir/f", "file", "f"),
])
OTHER = layer_tar([("other", "file", "other")])
CONFIG = {
    "Entrypoint": ["/bin/x"],
    "Cmd": ["--flag"],
    "Env": ["PATH=/bin", "A=1"],
    "WorkingDir": "/etc",
    "User": "1000:1000",
    "ExposedPorts": {"8080/tcp": {}},
    "Volumes": {"/data": {}},
    "Labels": {"org.example": "yes"},
}



def store_state(store: Store) -> dict[str, list[str]]:
    """Everything a failed load could have left behind."""
    out = {}
    for sub in ("layers", "images", "tmp", "containers"):
        d = store.root / sub
        out[sub] = sorted(p.name for p in d.iterdir()) if d.is_dir() else []
    out["refs"] = sorted(store.refs())
    return out
