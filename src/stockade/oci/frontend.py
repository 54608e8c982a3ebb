"""Build the compiled front end of `stockade oci` (frontend.c) for this installation.

`python -m stockade.oci.frontend [--if-stale] OUT` compiles it with the system's C
compiler, pointing its fallback at the `stockade` console script next to this
interpreter and stamping it with the package's build stamp (oci/fastplan.stamp: plans
are only stored for, and read by, a front end built from the installed sources);
--if-stale skips the build when OUT already has that stamp. Optional: without
a compiler there is no front end and `stockade oci` (Python) does every verb itself.
What the front end does itself: frontend.c and fastexec.c.
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


def built_stamp(path: str) -> str | None:
    """The build stamp a front end was compiled with (`OUT --stamp`), None if unknown."""
    try:
        out = subprocess.run([path, "--stamp"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def main(argv: list[str]) -> int:
    if_stale = argv[:1] == ["--if-stale"]
    args = argv[1:] if if_stale else argv
    if len(args) != 1:
        print("usage: python -m stockade.oci.frontend [--if-stale] OUT", file=sys.stderr)
        return 2
    if if_stale:
        from stockade.oci.fastplan import stamp

        if built_stamp(args[0]) == stamp():
            return 0  # built from these very sources
    try:
        print(build(args[0]))
    except (OSError, RuntimeError, ValueError) as exc:
        print(f"stockade: front end not built: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
