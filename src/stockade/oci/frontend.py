"""Build the compiled front end of `stockade oci` (frontend.c) for this installation.

`python -m stockade.oci.frontend OUT` compiles it with the system's C compiler, pointing
its fallback at the `stockade` console script next to this interpreter. Optional: without
a compiler there is no front end and `stockade oci` (Python) does every verb itself.
The front end only shortcuts start/kill/delete on their common path; see frontend.c.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

SOURCE = Path(__file__).with_name("frontend.c")


def cli_path() -> str:
    """The Python runtime the front end falls back to."""
    script = Path(sys.executable).with_name("stockade")
    if not os.access(script, os.X_OK):
        raise FileNotFoundError(f"{script}: no stockade console script next to {sys.executable}")
    return str(script)


def build(out: str, cli: str | None = None) -> str:
    """Compile frontend.c to `out` (atomically); returns `out`. Raises on failure."""
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise FileNotFoundError("no C compiler (cc/gcc) on PATH")
    target = cli or cli_path()
    if '"' in target or "\\" in target:
        raise ValueError(f"{target}: unusable in a C string literal")
    tmp = f"{out}.{os.getpid()}.tmp"
    try:
        from stockade.oci.fastplan import stamp

        subprocess.run([cc, "-O2", "-Wall", "-Wextra", "-Werror", f'-DSTOCKADE_CLI="{target}"',
                        f'-DSTOCKADE_STAMP="{stamp()}"', "-o", tmp, str(SOURCE)],
                       check=True, capture_output=True, text=True)
        os.chmod(tmp, 0o755)
        os.replace(tmp, out)
    except subprocess.CalledProcessError as exc:
        raise RuntimeError(f"{cc} failed:\n{exc.stderr}") from exc
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m stockade.oci.frontend OUT", file=sys.stderr)
        return 2
    try:
        print(build(argv[0]))
    except (OSError, RuntimeError, ValueError) as exc:
        print(f"stockade: front end not built: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
