"""The CIL files the package ships: the template module each base names (installed with
every policy's module, and read by `module` to keep a policy from redeclaring its
names), and the small base the tests compile against (see the package docstring)."""

from __future__ import annotations

from importlib import resources

# base name (lsm.selinux.base) → the template module that provides its macros
BASES: dict[str, str] = {"container": "stockade_container"}


def template_text(base: str = "container") -> str:
    return resources.files("stockade.profiles.selinux").joinpath(
        "templates", f"{base}.cil").read_text()


def base_text() -> str:
    return resources.files("stockade.profiles.selinux").joinpath("base", "base.cil").read_text()
