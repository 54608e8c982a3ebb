"""`user` and `namespaces`: the ids the payload runs as, their mapping, and the namespaces
it gets (every one unless a layer lists them; the host's network and user mapping take
`net` and `user` out)."""

from __future__ import annotations

from typing import Any

from stockade.policy import model as m
from stockade.policy.layers import Layer

_USER_KEYS = ("uid", "gid", "map", "uid_map", "gid_map")


class UserMerger:
    """Each key of `user` is a scalar: the last layer that sets it wins."""

    def __init__(self) -> None:
        self._set: dict[str, Any] = {}

    def add(self, layer: Layer) -> None:
        user = layer.spec.user
        if user is None:
            return
        for key in _USER_KEYS:
            value = getattr(user, key)
            if value is not None:
                self._set[key] = value

    def result(self) -> m.User:
        uid_map = tuple(m.IdMapping(e.inside, e.outside, e.count) for e in self._set.get("uid_map") or ())
        gid_map = tuple(m.IdMapping(e.inside, e.outside, e.count) for e in self._set.get("gid_map") or ())
        return m.User(uid=self._set.get("uid", 0), gid=self._set.get("gid", 0),
                      map=self._set.get("map", "explicit" if uid_map else "auto"),
                      uid_map=uid_map, gid_map=gid_map)


class NamespacesMerger:
    """`namespaces` lists are unioned in order of first mention."""

    def __init__(self) -> None:
        self._listed: list[str] | None = None  # None: no layer lists them, so all

    def add(self, layer: Layer) -> None:
        listed = layer.spec.namespaces
        if listed is None:
            return
        before = self._listed or []
        self._listed = before + [x for x in listed if x not in before]

    def result(self, network: m.Network, user: m.User) -> frozenset[str]:
        ns = frozenset(self._listed if self._listed is not None else m.ALL_NAMESPACES)
        if network.mode == "host":
            ns -= {"net"}
        if user.map == "host":
            ns -= {"user"}
        return ns
