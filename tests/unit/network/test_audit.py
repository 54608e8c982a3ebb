"""NET-EGRESS-OPEN and NET-BANDWIDTH-MISSING on fake /proc trees and fake jail records."""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from stockade.audit import registry
from stockade.audit.checks import ALL
from stockade.audit.checks import network as netchecks
from stockade.audit.model import Status
from stockade.audit.probe import Outcome
from stockade.audit.view import View, build_view
from tests.unit.audit.fakeproc import NS, FakeProc, host_facts

ROUTE = Outcome(True, None, "eth0: default route, gateway 10.213.0.1")
ONLY_LO = Outcome(False, 2, "no route but lo")


def view_of(tmp_path: Path, **kw: object) -> View:
    fake = FakeProc(tmp_path, **kw)  # type: ignore[arg-type]
    fake.write()
    return build_view(fake.pid, host_facts(), proc_root=str(tmp_path / "proc"),
                      fs_prefix=str(tmp_path / "fs"), runtime="stockade", container_id="x")


def status(view: View, cid: str, outcomes: dict[str, Outcome] | None = None) -> tuple[Status, str]:
    f = registry.evaluate(view, ALL[cid], {f"{cid}:{k}": v for k, v in (outcomes or {}).items()}, "")
    return f.status, " | ".join(f.evidence)


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    net = tmp_path / "state" / "net"
    net.mkdir(parents=True)
    monkeypatch.setenv("STOCKADE_STATE_DIR", str(tmp_path / "state"))
    return net


@pytest.fixture
def jail(state: Path) -> Iterator[dict[str, object]]:
    """A live jail record for the fake container's netns: its slot lock held here."""
    record: dict[str, object] = {
        "slot": 0, "netns": NS["net"], "table": "inet stockade_0",
        "links": ["stockade0", "stockade0i"], "egress": [["10.0.0.0/8", [443], "tcp", "x"]],
        "bandwidth": [10_000_000, 0]}
    (state / "0.json").write_text(json.dumps(record))
    fd = os.open(state / "0.lock", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    yield record
    os.close(fd)


def test_the_hosts_network_is_unrestricted_egress(tmp_path: Path) -> None:
    v = view_of(tmp_path, ns={**NS, "net": 0xEFFFFFF9})
    assert status(v, "NET-EGRESS-OPEN")[0] is Status.PRESENT


def test_no_route_but_lo_is_closed(tmp_path: Path, state: Path) -> None:
    assert status(view_of(tmp_path), "NET-EGRESS-OPEN", {"route": ONLY_LO})[0] is Status.ABSENT


def test_a_route_out_without_a_jail_is_open(tmp_path: Path, state: Path) -> None:
    got, evidence = status(view_of(tmp_path), "NET-EGRESS-OPEN", {"route": ROUTE})
    assert got is Status.PRESENT and "not a stockade private network" in evidence


def test_a_dead_runs_record_is_not_a_jail(tmp_path: Path, state: Path) -> None:
    (state / "0.json").write_text(json.dumps({"slot": 0, "netns": NS["net"]}))
    (state / "0.lock").touch()  # nobody holds it
    assert status(view_of(tmp_path), "NET-EGRESS-OPEN", {"route": ROUTE})[0] is Status.PRESENT


def test_a_jail_with_its_table_is_restricted(tmp_path: Path, jail: dict[str, object],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[list[str]] = []
    monkeypatch.setattr(netchecks, "_tool", lambda argv: (asked.append(argv), (0, ""))[1])
    got, evidence = status(view_of(tmp_path), "NET-EGRESS-OPEN", {"route": ROUTE})
    assert got is Status.ABSENT and "1 egress rule(s)" in evidence
    assert asked == [["nft", "list", "table", "inet", "stockade_0"]]


def test_a_jail_whose_table_is_gone_is_open(tmp_path: Path, jail: dict[str, object],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(netchecks, "_tool", lambda argv: (1, ""))
    got, evidence = status(view_of(tmp_path), "NET-EGRESS-OPEN", {"route": ROUTE})
    assert got is Status.PRESENT and "is gone" in evidence


def test_a_jail_allowing_everything_is_open(tmp_path: Path, state: Path, jail: dict[str, object],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    (state / "0.json").write_text(json.dumps({**jail, "egress": [["0.0.0.0/0", [], "", "x"]]}))
    monkeypatch.setattr(netchecks, "_tool", lambda argv: (0, ""))
    assert status(view_of(tmp_path), "NET-EGRESS-OPEN", {"route": ROUTE})[0] is Status.PRESENT


def test_bandwidth_asked_and_missing(tmp_path: Path, jail: dict[str, object],
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(netchecks, "_tool", lambda argv: (0, "qdisc noqueue 0: root refcnt 2\n"))
    got, evidence = status(view_of(tmp_path), "NET-BANDWIDTH-MISSING")
    assert got is Status.PRESENT and "no tbf qdisc" in evidence and "stockade0i" in evidence


def test_bandwidth_asked_and_in_place(tmp_path: Path, jail: dict[str, object],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(netchecks, "_tool", lambda argv: (
        0, "qdisc tbf 8001: root refcnt 2 rate 10Mbit burst 64Kb lat 50ms\n"))
    assert status(view_of(tmp_path), "NET-BANDWIDTH-MISSING")[0] is Status.ABSENT


def test_bandwidth_check_does_not_apply_outside_a_jail(tmp_path: Path, state: Path) -> None:
    assert status(view_of(tmp_path), "NET-BANDWIDTH-MISSING")[0] is Status.NOT_APPLICABLE
