"""Loading an archive that arrives as a stream (`docker save IMAGE | stockade image load -`)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import BinaryIO

from stockade.errors import StockadeError
from stockade.image.digest import CHUNK
from stockade.image.limits import LimitError, Limits
from stockade.image.store import ImageRecord, Store

SLACK = 64 << 20  # a docker save archive: the layer tars plus manifests and configs


def load_stream(store: Store, stream: BinaryIO, tags: list[str], limits: Limits,
                name: str = "stdin") -> list[ImageRecord]:
    """Tar needs random access, so the stream is spooled into the store's tmp dir first,
    no bigger than the layers may be plus the manifests (a stream must not fill the disk)."""
    store.ensure()
    most = limits.max_size + SLACK
    with tempfile.NamedTemporaryFile(dir=store.tmp_dir, prefix="stdin-", suffix=".tar") as tmp:
        while chunk := stream.read(CHUNK):
            tmp.write(chunk)
            if tmp.tell() > most:
                raise LimitError(f"archive size ({name})", tmp.tell(), most, "--max-size")
        tmp.flush()
        try:
            return store.load(Path(tmp.name), tags, limits)
        except StockadeError as exc:  # name what the user gave, not the spool file (gone)
            exc.message = exc.message.replace(tmp.name, name)
            raise
