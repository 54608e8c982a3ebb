"""`lsm`: AppArmor and SELinux confinement, Landlock's mode, and whether a missing LSM is
an error; each is set by the last layer that names it."""

from __future__ import annotations

import re

from stockade.errors import Location, PolicyError
from stockade.policy import model as m
from stockade.policy.layers import Layer

_SELINUX_TYPE = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,126}")


def selinux_type(name: str, loc: Location) -> str:
    if not _SELINUX_TYPE.fullmatch(name):
        raise PolicyError(loc, "invalid SELinux type name", found=repr(name),
                          expected="an identifier: letters, digits, underscores, starting with a letter",
                          suggestion=f"did you mean '{re.sub(r'[^A-Za-z0-9_]', '_', name)}'?")
    return name


class LsmMerger:
    def __init__(self) -> None:
        self._apparmor: m.AppArmor | None = None
        self._selinux_named = False  # some layer has an `lsm.selinux` section
        self._selinux_type: str | None = None
        self._selinux_base = "container"
        self._landlock = m.Landlock("best-effort")
        self._required = False

    def add(self, layer: Layer) -> None:
        lsm = layer.spec.lsm
        if lsm is None:
            return
        if lsm.apparmor is not None:
            self._apparmor = m.AppArmor(lsm.apparmor.mode)
        if lsm.selinux is not None:
            self._selinux_named = True
            if lsm.selinux.type is not None:
                self._selinux_type = selinux_type(lsm.selinux.type, layer.loc("lsm", "selinux", "type"))
            self._selinux_base = lsm.selinux.base
        if lsm.landlock is not None:
            self._landlock = m.Landlock(lsm.landlock.mode)
        if lsm.required is not None:
            self._required = lsm.required

    def result(self, policy_name: str) -> m.Lsm:
        selinux = None
        if self._selinux_named:
            # no type written: one named after the policy (web-api -> web_api_t)
            selinux = m.SELinux(self._selinux_type or policy_name.replace("-", "_") + "_t", self._selinux_base)
        return m.Lsm(apparmor=self._apparmor, selinux=selinux, landlock=self._landlock, required=self._required)
