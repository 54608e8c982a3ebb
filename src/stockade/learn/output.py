"""Write a generated policy only once it is known to load: atomically, never half."""

from __future__ import annotations

import os
import tempfile
from typing import Any

from stockade.errors import StockadeError


def check_and_write(doc: dict[str, Any], path: str) -> None:
    """Render, prove the text loads and resolves (extends included), then rename it into
    place: a failed check or a crash leaves the old file (or none), never a partial one."""
    from stockade.policy.render import dump_yaml
    from stockade.policy.resolve import load_policy

    text = dump_yaml(doc)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".stockade-", suffix=".yaml", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            load_policy(tmp)
        except StockadeError as exc:
            raise StockadeError(f"internal: the generated policy does not load ({exc}); "
                                f"{path} not written", exit_code=2) from exc
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
