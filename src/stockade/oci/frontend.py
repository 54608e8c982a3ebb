"""Build the compiled front end of `stockade oci` (frontend.c and fastexec.c, with the
executor's set-up steps executor/*.c and executor/steps/*.c): the one implementation of
that build, used by the package's own build
(setup.py: `pip install` and `pip install -e .` install it as `stockade-oci` next to the
`stockade` console script) and by `python -m stockade.oci.frontend [--if-stale] OUT`
(a checkout whose sources changed since; --if-stale skips the build when OUT already
has the package's stamp).

The front end falls back to the `stockade` console script next to itself (found when
it runs), and is stamped with the package's build stamp (oci/fastplan.stamp: plans are
only stored for, and read by, a front end built from the installed sources). It needs
a C compiler and json-c (Debian: gcc, libjson-c-dev); without them there is no front
end and `stockade oci` (Python) does every verb itself.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

SOURCE = Path(__file__).with_name("frontend.c")
FAST = Path(__file__).with_name("fastexec.c")  # its create/run from a stored plan
EXECUTOR = Path(__file__).resolve().parent.parent / "executor"  # the set-up steps
STEPS = EXECUTOR / "steps"
NAME = "stockade-oci"


def build(out: str, cli: str | None = None, *, test_hooks: bool = False,
          stamp: str | None = None) -> str:
    """Compile frontend.c to `out` (atomically); returns `out`. Raises on failure.
    cli: the fallback's path (default: `stockade` next to the front end, when it runs);
    test_hooks: the tests' build (STOCKADE_TEST_PAUSE stops, `--read-plan FILE`);
    stamp: the package's build stamp (default: fastplan.stamp() of this package)."""
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise FileNotFoundError("no C compiler (cc/gcc) on PATH")
    if stamp is None:
        from stockade.oci.fastplan import stamp as package_stamp

        stamp = package_stamp()
    defines = [f'-DSTOCKADE_STAMP="{stamp}"']
    if cli is not None:
        if '"' in cli or "\\" in cli:
            raise ValueError(f"{cli}: unusable in a C string literal")
        defines.append(f'-DSTOCKADE_CLI="{cli}"')
    if test_hooks:
        defines.append("-DSTOCKADE_TEST_HOOKS")
    tmp = f"{out}.{os.getpid()}.tmp"
    try:
        steps = sorted(str(p) for p in (*EXECUTOR.glob("*.c"), *STEPS.glob("*.c")))
        subprocess.run([cc, "-O2", "-Wall", "-Wextra", "-Werror", *defines, "-I", str(EXECUTOR),
                        "-I", str(STEPS), "-o", tmp, str(SOURCE), str(FAST), *steps, "-ljson-c"],
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
