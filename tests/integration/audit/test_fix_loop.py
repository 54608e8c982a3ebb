"""audit -> --fix -> compile --target docker -> run -> audit: the loop closes."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import pytest

from stockade.cli import main
from tests.conftest import Dockerd

from ._helpers import HOST_ONLY, audit_host, open_set

pytestmark = pytest.mark.root

BAD = ["--cap-add", "SYS_ADMIN", "--security-opt", "seccomp=unconfined",
       "--security-opt", "systempaths=unconfined", "--memory", "0"]


def _run(dockerd: Dockerd, name: str, args: list[str]) -> None:
    dockerd.docker("rm", "-f", name, check=False)
    dockerd.docker("run", "-d", "--name", name, *args, dockerd.image, "sleep", "600")


def test_fix_closes_what_was_found(dockerd: Dockerd, tmp_path: Path) -> None:
    pytest.importorskip("stockade.profiles.docker")
    env = {"DOCKER_HOST": dockerd.host}
    names = ("stockade-audit-fix-before", "stockade-audit-fix-after")
    try:
        _run(dockerd, names[0], BAD)
        fix = tmp_path / "fix.yaml"
        rc, before = audit_host("--docker", names[0], "--fix", str(fix), env=env)
        found = open_set(before)
        assert {"CAP-SYS_ADMIN", "SECCOMP-DISABLED", "PROCSYS-CORE-PATTERN", "MASKED-PATHS-MISSING"} <= set(found)
        out = tmp_path / "compiled"
        assert main(["compile", str(fix), "--target", "docker", "-o", str(out)]) == 0
        line = (out / "docker-flags.txt").read_text().split("\n", 1)[0]
        args = _docker_args(line, out)
        _run(dockerd, names[1], args)
        rc, after = audit_host("--docker", names[1], env=env)
        still = open_set(after)
        # Docker cannot give one container a user namespace (userns-remap is daemon-wide)
        expressible = {k: v for k, v in found.items() if k != "USERNS-ABSENT"}
        assert set(expressible) & set(still) == set()
        high = [f["id"] for f in after["audits"][0]["findings"] if f["status"] in ("exploitable", "present")
                and f["severity"] in ("high", "critical") and f["id"] not in HOST_ONLY | {"USERNS-ABSENT"}]
        assert high == []
    finally:
        dockerd.docker("rm", "-f", *names, check=False)


def _docker_args(line: str, out: Path) -> list[str]:
    words = shlex.split(line)
    assert words[:2] == ["docker", "run"]
    args: list[Any] = []
    for w in words[2:]:
        if w in ("IMAGE", "[COMMAND...]"):
            continue
        args.append(w.replace("seccomp=seccomp.json", f"seccomp={out / 'seccomp.json'}"))
    return args
