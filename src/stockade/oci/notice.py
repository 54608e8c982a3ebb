"""Messages of the OCI runtime for the engine and the user: on stderr, and in the --log
file in runc's format (logrus text or JSON lines), which engines read.

Warnings are what the runtime spec says to log and carry on with: properties of
config.json stockade does not know (the spec: a runtime MUST NOT error on them), kernel
files a limit has no effect without, poststart/poststop hooks that failed.
"""

from __future__ import annotations

import sys
import time

_log: tuple[str, str] | None = None  # (path, "text" | "json"), from --log/--log-format


def configure(path: str | None, fmt: str) -> None:
    global _log
    _log = (path, fmt) if path else None


def write(path: str, fmt: str, level: str, msg: str) -> None:
    """One line in the log file; a log that cannot be written loses the line only."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    if fmt == "json":
        import json

        line = json.dumps({"level": level, "msg": msg, "time": stamp})
    else:
        quoted = msg.replace("\\", "\\\\").replace('"', '\\"')
        line = f'time="{stamp}" level={level} msg="{quoted}"'
    try:
        with open(path, "a") as fh:
            fh.write(line + "\n")
    except OSError:
        pass


def warn(msg: str) -> None:
    print(f"stockade: warning: {msg}", file=sys.stderr)
    if _log is not None:
        write(_log[0], _log[1], "warning", msg)
