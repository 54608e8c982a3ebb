"""What engines send (tests/data/engines): each captured config.json validates and
translates, and the fields that were refused before (issue #15) are read as runc reads
them. No privileges: a plain file stands for a network namespace joined by path."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

import pytest

from stockade.oci import config
from stockade.oci.config import ConfigError
from stockade.oci.translate import translate
from tests.unit.oci.test_translate import _cfg, _tr, bundle  # noqa: F401 - a fixture

DATA = Path(__file__).resolve().parents[2] / "data" / "engines"
CASES = sorted((p.parent.name, p.stem) for p in DATA.glob("*/*.json"))


def _filled(engine: str, case: str, tmp: Path) -> dict[str, Any]:
    """The placeholders (tests/data/engines/README.md) -> files under tmp."""
    (tmp / "rootfs").mkdir(exist_ok=True)
    netns = tmp / "netns"
    netns.touch()
    text = (DATA / engine / f"{case}.json").read_text()
    for k, v in {"@ROOTFS@": str(tmp / "rootfs"), "@NS:network@": str(netns),
                 "@SCRATCH@": str(tmp / "s"), "@CGROUP@": "/sk/c1", "@ID@": "c1",
                 "@SHORTID@": "c1"}.items():
        text = text.replace(k, v)
    cfg: dict[str, Any] = json.loads(text)
    for m in cfg.get("mounts", []):
        src = Path(m.get("source", ""))
        if str(src).startswith(str(tmp / "s" / "dir")):
            src.mkdir(parents=True, exist_ok=True)
        elif str(src).startswith(str(tmp / "s" / "file")):
            src.parent.mkdir(parents=True, exist_ok=True)
            src.touch()
    return cfg


@pytest.mark.parametrize(("engine", "case"), CASES)
def test_captured_config_translates(engine: str, case: str, tmp_path: Path) -> None:
    cfg = _filled(engine, case, tmp_path)
    config.validate(cfg)
    c = translate(config.strip_nulls(cfg), str(tmp_path), "c1", last_cap=40, euid=0)
    assert c.plan.argv == tuple(cfg["process"]["args"])
    assert c.cgroups_path == "/sk/c1"


def test_docker_blkio_weight_zero_asks_nothing(bundle: Path) -> None:  # noqa: F811
    """docker sends blockIO {weight: 0} on every run: 0 is unset (runc's reading)."""
    _tr(_cfg(linux__resources__blockIO={"weight": 0}), bundle)
    _tr(_cfg(linux__resources__blockIO={"weight": 0, "weightDevice": []}), bundle)
    with pytest.raises(ConfigError, match=r"linux\.resources\.blockIO: not supported"):
        _tr(_cfg(linux__resources__blockIO={"weight": 500}), bundle)


def test_docker_deny_after_allows(bundle: Path) -> None:  # noqa: F811
    """docker's default rules end with `deny c 10:229` (fuse): it denies what no earlier
    allow of the config gave, so the device cgroup is as without it."""
    rules = [{"allow": False, "access": "rwm"},
             {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"}]
    plain = _tr(_cfg(linux__resources={"devices": copy.deepcopy(rules)}), bundle)
    rules.append({"allow": False, "type": "c", "major": 10, "minor": 229, "access": "rwm"})
    with_deny = _tr(_cfg(linux__resources={"devices": rules}), bundle)
    assert with_deny.plan.policy.limits.devices_allow == plain.plan.policy.limits.devices_allow
    assert "c 10:229" not in " ".join(with_deny.plan.policy.limits.devices_allow or ())
    # a deny that cuts into an earlier allow (a wildcard one included) stays refused
    for allow in ({"allow": True, "type": "c", "major": 10, "minor": -1, "access": "r"},
                  {"allow": True, "type": "a", "access": "rwm"}):
        bad = [rules[0], allow, rules[2]]
        with pytest.raises(ConfigError, match=r"devices\[2\]: a deny rule that cuts"):
            _tr(_cfg(linux__resources={"devices": bad}), bundle)
    # disjoint access: the deny of mknod does not touch an allow of read/write
    ok = [rules[0], {"allow": True, "type": "c", "major": 10, "minor": 229, "access": "rw"},
          {"allow": False, "type": "c", "major": 10, "minor": 229, "access": "m"}]
    got = _tr(_cfg(linux__resources={"devices": ok}), bundle)
    assert got.plan.policy.limits.devices_allow[-1] == "c 10:229 rw"


def _joined_net(path: str) -> dict[str, Any]:
    cfg = _cfg(linux__sysctl={"net.ipv4.ping_group_range": "0 0"})
    cfg["linux"]["namespaces"] = [{"type": t} for t in ("pid", "ipc", "uts", "mount")]
    cfg["linux"]["namespaces"].append({"type": "network", "path": path})
    return cfg


def test_net_sysctl_in_a_netns_joined_by_path(bundle: Path, tmp_path: Path) -> None:  # noqa: F811
    """podman's default network: the netns is made by the engine and joined by path,
    with net.ipv4.ping_group_range set; runc accepts it, so does stockade now."""
    netns = tmp_path / "netns-file"
    netns.touch()
    c = _tr(_joined_net(str(netns)), bundle)
    assert dict(c.plan.sysctl) == {"net.ipv4.ping_group_range": "0 0"}
    assert ("network", str(netns)) in c.join


@pytest.mark.parametrize("host", ["/proc/self/ns/net", "/proc/1/ns/net"])
def test_net_sysctl_refused_in_the_hosts_netns(bundle: Path, host: str) -> None:  # noqa: F811
    """Joining the host's own network namespace: the sysctl would change the host."""
    try:
        os.stat(host)
    except OSError as exc:
        pytest.skip(f"{host}: {exc.strerror} (init's namespaces are closed to us here)")
    with pytest.raises(ConfigError, match="the host's network namespace"):
        _tr(_joined_net(host), bundle)
