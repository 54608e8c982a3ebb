"""The package's build step: the compiled OCI front end and executor.

Metadata lives in pyproject.toml; this file only adds the build of `stockade-oci`
(src/stockade/oci/frontend.c, fastexec.c and the executor's steps in
src/stockade/executor/), installed next to the `stockade` console script by `pip install`
and `pip install -e .`, by the one implementation of that build
(stockade.oci.frontend.build). A non-editable install also fixes the package's build
stamp (oci/fastplan.BUILD_STAMP). Without a C compiler or json-c the package installs
without the front end (a warning says why) and `stockade oci` does every verb itself.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.dist import Distribution

SRC = Path(__file__).resolve().parent / "src"
sys.path.insert(0, str(SRC))

from stockade.oci import fastplan, frontend  # noqa: E402 - the package's own build code

# setuptools has no build_scripts of its own: the one it runs (distutils')
build_scripts = Distribution().get_command_class("build_scripts")


class WithFrontEnd(Distribution):
    """A distribution with one compiled program: installed as a script (BuildFrontEnd
    makes it), in a wheel for this platform."""

    def __init__(self, attrs: dict[str, object] | None = None) -> None:
        super().__init__(attrs)
        self.scripts = [frontend.NAME]  # made by BuildFrontEnd, not copied from a source

    def has_ext_modules(self) -> bool:
        return True


class BuildPy(build_py):
    """An installed package's stamp is fixed at its build: its files get new mtimes
    when copied. An editable one is stamped from its live sources each time."""

    def run(self) -> None:
        super().run()
        if not getattr(self, "editable_mode", False):
            fastplan.fix_stamp(os.path.join(self.build_lib, "stockade"))


class BuildFrontEnd(build_scripts):
    """build_scripts, with the front end as the one script (its sources are package
    data: they are installed too, for `python -m stockade.oci.frontend`)."""

    def get_source_files(self) -> list[str]:
        return []

    def get_outputs(self) -> list[str]:
        return [os.path.join(self.build_dir, frontend.NAME)]

    def run(self) -> None:
        self.scripts = []
        super().run()
        build_py_cmd = self.get_finalized_command("build_py")
        if getattr(build_py_cmd, "editable_mode", False):
            package = str(SRC / "stockade")
        else:
            package = os.path.join(build_py_cmd.build_lib, "stockade")
        self.mkpath(self.build_dir)
        out = os.path.join(self.build_dir, frontend.NAME)
        try:
            frontend.build(out, stamp=fastplan.stamp(package))
        except (OSError, RuntimeError, ValueError) as exc:
            self.warn(f"stockade-oci (the compiled OCI front end) not built: {exc}")


if __name__ == "__main__":  # the build backend runs it so; tests import the commands
    setup(distclass=WithFrontEnd, cmdclass={"build_py": BuildPy, "build_scripts": BuildFrontEnd})
