"""`capabilities`: Docker's default set until a layer says otherwise; `drop: [ALL]` empties
the set, `add: [ALL]` adds every capability; a named drop beats an add in the same file,
and a later file's add (drop) takes back an earlier file's drop (add)."""

from __future__ import annotations

from stockade.errors import PolicyError
from stockade.policy import model as m
from stockade.policy.layers import Layer
from stockade.policy.names import capability
from stockade.policy.vocab.capabilities import CAP_NUMBER, DOCKER_DEFAULT_CAPS


def _is_all(word: str) -> bool:
    return word.strip().upper() == "ALL"


class CapabilitiesMerger:
    def __init__(self) -> None:
        self._kept: set[str] | None = None  # None: no layer has a capabilities section
        self._drop_named: list[str] = []
        self._ambient: list[str] = []

    def add(self, layer: Layer) -> None:
        cs = layer.spec.capabilities
        if cs is None:
            return
        drops_all = any(_is_all(d) for d in cs.drop)
        if self._kept is None:
            self._kept = set() if drops_all else set(DOCKER_DEFAULT_CAPS)
        elif drops_all:
            self._kept = set()
        layer_add = [capability(c, layer.loc("capabilities", "add", i)) for i, c in enumerate(cs.add)
                     if not _is_all(c)]
        if any(_is_all(c) for c in cs.add):
            layer_add = list(CAP_NUMBER)
        layer_drop = [capability(c, layer.loc("capabilities", "drop", i)) for i, c in enumerate(cs.drop)
                      if not _is_all(c)]
        self._kept |= set(layer_add)
        self._kept -= set(layer_drop)  # a named drop beats an add in the same file
        self._drop_named = [d for d in self._drop_named if d not in layer_add] + layer_drop
        for i, c in enumerate(cs.ambient):
            self._ambient.append(capability(c, layer.loc("capabilities", "ambient", i)))

    def result(self, top: Layer) -> m.Capabilities:
        kept = frozenset(self._kept or set())
        for i, cap in enumerate(self._ambient):
            if cap not in kept:
                raise PolicyError(top.loc("capabilities", "ambient", i) if top.spec.capabilities else top.loc(),
                                  "ambient capability is not kept", found=cap,
                                  expected="a capability also in `add`", suggestion=f"add {cap} to capabilities.add")
        return m.Capabilities(
            drop=tuple(["ALL"] if self._kept is not None else []) + tuple(sorted(set(self._drop_named))),
            add=tuple(sorted(kept, key=CAP_NUMBER.__getitem__)),
            ambient=tuple(dict.fromkeys(self._ambient)),
            kept=kept,
        )
