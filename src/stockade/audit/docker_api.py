"""A minimal Docker Engine API client over its unix socket (http.client, no SDK)."""

from __future__ import annotations

import http.client
import json
import os
import socket
from typing import Any
from urllib.parse import quote

from stockade.errors import StockadeError

DEFAULT_SOCKET = "/var/run/docker.sock"


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self._path)
        self.sock = s


def socket_path(env: dict[str, str] | None = None) -> str:
    host = (env if env is not None else dict(os.environ)).get("DOCKER_HOST", "")
    if not host:
        return DEFAULT_SOCKET
    if host.startswith("unix://"):
        return host[len("unix://"):]
    raise StockadeError(f"DOCKER_HOST={host}: only unix:// sockets are supported by the audit")


class DockerClient:
    def __init__(self, path: str | None = None, timeout: float = 5.0) -> None:
        self.path = path or socket_path()
        self.timeout = timeout

    def get(self, url: str) -> Any:
        conn = _UnixConnection(self.path, self.timeout)
        try:
            conn.request("GET", url, headers={"Host": "docker"})
            resp = conn.getresponse()
            body = resp.read()
        except (OSError, http.client.HTTPException) as exc:
            raise StockadeError(f"Docker API at {self.path}: {exc}") from None
        finally:
            conn.close()
        if resp.status == 404:
            raise StockadeError(f"Docker: not found: {url}")
        if resp.status != 200:
            raise StockadeError(f"Docker API at {self.path}: HTTP {resp.status} for {url}")
        try:
            return json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise StockadeError(f"Docker API at {self.path} answered something that is not JSON") from None

    def inspect(self, name: str) -> dict[str, Any]:
        data = self.get(f"/containers/{quote(name, safe='')}/json")
        if not isinstance(data, dict):
            raise StockadeError("Docker API: unexpected inspect answer")
        return data

    def running_ids(self) -> list[str]:
        data = self.get("/containers/json")
        if not isinstance(data, list):
            raise StockadeError("Docker API: unexpected container list")
        return [str(c.get("Id", "")) for c in data if isinstance(c, dict) and c.get("Id")]

    def version(self) -> str:
        data = self.get("/version")
        return str(data.get("Version", "?")) if isinstance(data, dict) else "?"
