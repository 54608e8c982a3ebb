"""Write the fast `stockade` entry script: `python -m stockade.entry_script [--check] [PATH]`.

pip's console script starts the interpreter with `site` (the venv, every .pth file,
setuptools' distutils hack) and runs `import re` (re, enum, functools) before anything of
ours: work every `stockade run` pays before it starts, though its start competes with
runc's and none of it is needed. This writes a script that pip would not: the venv's interpreter with
`-IS` (isolated: no PYTHON* variables, no user site, no script directory on sys.path; no
site), and the paths `site` adds for this environment (site-packages, the editable
install's src/) written out when the script is made, so nothing has to be computed at
start. The import lines of .pth files are not replayed: a package that only an import
hook of a .pth file can find is not found (none of stockade's dependencies needs one).
What it saves: bench/RESULTS.md (the CLI rows are timed through this script).

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
# console script would import site and re first, on every `stockade run`.
import sys
sys.path.extend({paths!r})
from stockade.cli import entry
if __name__ == "__main__":
    entry()
"""


def render(python: str, paths: list[str]) -> str:
    if any(c.isspace() for c in python):
        # a shebang line cannot quote: the kernel splits at the first blank
        raise ValueError(f"interpreter path {python!r} contains whitespace")
    return TEMPLATE.format(python=python, paths=paths)


def site_paths(python: str) -> list[str]:
    """What `site` adds to sys.path for `python -I`, in order (the script's part)."""
    import ast
    import subprocess

    def path_of(flags: str) -> list[str]:
        out = subprocess.run([python, flags, "-c", "import sys; print(repr(sys.path))"],
                             capture_output=True, text=True, check=True).stdout
        return [str(p) for p in ast.literal_eval(out)]

    bare = set(path_of("-IS"))
    return [p for p in path_of("-I") if p not in bare]


def default_paths() -> tuple[str, str, list[str]]:
    """(script, interpreter, site paths) for the running interpreter's environment.
    The interpreter path is not resolved: a venv's bin/python symlink is what makes it
    that venv. The package's own directory is added if `site` does not list it."""
    import stockade

    python = sys.executable
    script = os.path.join(os.path.dirname(python), "stockade")
    paths = site_paths(python)
    package_dir = os.path.dirname(os.path.dirname(os.path.abspath(stockade.__file__)))
    if package_dir not in paths:
        paths.insert(0, package_dir)
    return script, python, paths


def install(script: str | None = None) -> str:
    """Replace the entry script atomically (mode 0755); returns its path."""
    default_script, python, paths = default_paths()
    script = script or default_script
    text = render(python, paths)
    tmp = f"{script}.{os.getpid()}.tmp"
    with open(tmp, "w") as fh:
        fh.write(text)
    os.chmod(tmp, 0o755)
    os.replace(tmp, script)
    return script


def is_installed(script: str | None = None) -> bool:
    default_script, python, paths = default_paths()
    try:
        with open(script or default_script) as fh:
            return fh.read() == render(python, paths)
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
