"""Run the audit in-process (host view) or inside a container (--self), read its JSON."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from typing import Any

from stockade.audit.checks import ALL
from stockade.cli import main

from .conftest import SELF_ENV

OPEN = ("exploitable", "present")
HOST_ONLY = frozenset(c.id for c in ALL.values() if c.host_only)


def audit_host(*args: str, env: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    fd, path = tempfile.mkstemp(suffix=".json")
    os.close(fd)
    old = dict(os.environ)
    try:
        if env:
            os.environ.update(env)
        rc = main(["audit", *args, "--format", "json", "-o", path, "--progress", "never"]
                  if "--all" in args else ["audit", *args, "--format", "json", "-o", path])
        with open(path) as fh:
            text = fh.read()
        return rc, json.loads(text) if text else {}
    finally:
        os.environ.clear()
        os.environ.update(old)
        os.unlink(path)


def open_set(doc: dict[str, Any], index: int = 0, *, container_only: bool = True) -> dict[str, str]:
    """{ID: status} of the open findings of one audit (host-only rows left out by default)."""
    findings = doc["audits"][index]["findings"]
    return {f["id"]: f["status"] for f in findings
            if f["status"] in OPEN and not (container_only and f["id"] in HOST_ONLY)}


def errors(doc: dict[str, Any], index: int = 0) -> list[str]:
    return [f"{f['id']}: {f['evidence']}" for f in doc["audits"][index]["findings"] if f["status"] == "error"]


def self_env_args(flag: str) -> list[str]:
    out: list[str] = []
    for k, v in SELF_ENV.items():
        out += [flag, f"{k}={v}"]
    return out


def parse_self(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    if proc.returncode not in (0, 1):
        raise AssertionError(f"--self failed ({proc.returncode}): {proc.stderr[-2000:]}")
    doc: dict[str, Any] = json.loads(proc.stdout)
    return doc
