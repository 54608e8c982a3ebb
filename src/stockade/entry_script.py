"""Write the fast `stockade` entry script: `python -m stockade.entry_script [--check] [PATH]`.

pip's console script starts the interpreter with `site` (~2 ms here: the venv, every .pth
file, setuptools' distutils hack) and runs `import re` before anything of ours (~2-5 ms:
re, enum, functools). For `stockade run`, whose start competes with runc's, that is a
tenth of the budget. This writes a script that pip would not: the venv's interpreter with
`-IS` (isolated: no PYTHON* variables, no user site, no script directory on sys.path; no
site), the directory that holds the `stockade` package put on sys.path by hand, and
stockade.cli.entry, which adds site-packages on the first import that needs it.

`pip install` writes its own script again: run this after it (`make dev` does).
Pinned to this checkout or install: the script names the interpreter and the package
directory by absolute path, as pip's own shebang does.
"""

from __future__ import annotations

import os
import sys

TEMPLATE = """\
#!{python} -IS
# stockade's fast entry, written by `python -m stockade.entry_script` (see there): pip's
# console script would import site and re first, ~4 ms of every `stockade run`.
import sys
sys.path.insert(0, {package_dir!r})
from stockade.cli import entry
if __name__ == "__main__":
    entry()
"""


def render(python: str, package_dir: str) -> str:
    if any(c.isspace() for c in python):
        # a shebang line cannot quote: the kernel splits at the first blank
        raise ValueError(f"interpreter path {python!r} contains whitespace")
    return TEMPLATE.format(python=python, package_dir=package_dir)


def default_paths() -> tuple[str, str, str]:
    """(script, interpreter, package dir) for the running interpreter's environment.
    The interpreter path is not resolved: a venv's bin/python symlink is what makes it
    that venv."""
    import stockade

    python = sys.executable
    script = os.path.join(os.path.dirname(python), "stockade")
    package_dir = os.path.dirname(os.path.dirname(os.path.abspath(stockade.__file__)))
    return script, python, package_dir


def install(script: str | None = None) -> str:
    """Replace the entry script atomically (mode 0755); returns its path."""
    default_script, python, package_dir = default_paths()
    script = script or default_script
    text = render(python, package_dir)
    tmp = f"{script}.{os.getpid()}.tmp"
    with open(tmp, "w") as fh:
        fh.write(text)
    os.chmod(tmp, 0o755)
    os.replace(tmp, script)
    return script


def is_installed(script: str | None = None) -> bool:
    default_script, python, package_dir = default_paths()
    try:
        with open(script or default_script) as fh:
            return fh.read() == render(python, package_dir)
    except OSError:
        return False


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    check = "--check" in args
    paths = [a for a in args if a != "--check"]
    script = paths[0] if paths else None
    if check:
        ok = is_installed(script)
        print("fast entry script: " + ("installed" if ok else "not installed (pip's script)"))
        return 0 if ok else 1
    print(f"wrote {install(script)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
