"""The image config (`config` of the OCI/docker image JSON): what the image proposes to run.

Parsed strictly at the edge; inside stockade it is a frozen ImageConfig. Nothing here is
obeyed by itself: `stockade.image.process.resolve_process` decides what the policy allows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from stockade.errors import StockadeError


def _strs(value: Any, what: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise StockadeError(f"image config: {what} must be a list of strings")
    return tuple(value)


def _str(value: Any, what: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise StockadeError(f"image config: {what} must be a string")
    return value


def _keys(value: Any, what: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise StockadeError(f"image config: {what} must be an object")
    return tuple(sorted(str(k) for k in value))


@dataclass(frozen=True)
class ImageConfig:
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    env: tuple[str, ...] = ()  # "KEY=value", in image order
    working_dir: str = ""
    user: str = ""  # "", "name", "uid", "name:group", "uid:gid"
    exposed_ports: tuple[str, ...] = ()  # "80/tcp"
    volumes: tuple[str, ...] = ()
    labels: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    stop_signal: str = ""
    architecture: str = ""
    os: str = ""
    created: str = ""
    author: str = ""

    @classmethod
    def from_image_json(cls, doc: Any) -> ImageConfig:
        if not isinstance(doc, dict):
            raise StockadeError("image config is not a JSON object")
        cfg = doc.get("config") or {}
        if not isinstance(cfg, dict):
            raise StockadeError("image config: config must be an object")
        labels = cfg.get("Labels") or {}
        if not isinstance(labels, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in labels.items()
        ):
            raise StockadeError("image config: Labels must map strings to strings")
        env = _strs(cfg.get("Env"), "Env")
        for item in env:
            if "=" not in item or item.startswith("="):
                raise StockadeError(f"image config: Env entry {item!r} is not KEY=value")
        return cls(
            entrypoint=_strs(cfg.get("Entrypoint"), "Entrypoint"),
            cmd=_strs(cfg.get("Cmd"), "Cmd"),
            env=env,
            working_dir=_str(cfg.get("WorkingDir"), "WorkingDir"),
            user=_str(cfg.get("User"), "User"),
            exposed_ports=_keys(cfg.get("ExposedPorts"), "ExposedPorts"),
            volumes=_keys(cfg.get("Volumes"), "Volumes"),
            labels=MappingProxyType(dict(sorted(labels.items()))),
            stop_signal=_str(cfg.get("StopSignal"), "StopSignal"),
            architecture=_str(doc.get("architecture"), "architecture"),
            os=_str(doc.get("os"), "os"),
            created=_str(doc.get("created"), "created"),
            author=_str(doc.get("author"), "author"),
        )

    def as_dict(self) -> dict[str, Any]:
        """The `inspect` view, with docker's key names."""
        return {
            "Entrypoint": list(self.entrypoint),
            "Cmd": list(self.cmd),
            "Env": list(self.env),
            "WorkingDir": self.working_dir,
            "User": self.user,
            "ExposedPorts": list(self.exposed_ports),
            "Volumes": list(self.volumes),
            "Labels": dict(self.labels),
            "StopSignal": self.stop_signal,
        }
