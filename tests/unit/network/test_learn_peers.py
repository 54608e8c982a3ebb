"""`stockade learn`: the peers a workload connected to become network.egress proposals."""

from __future__ import annotations

from pathlib import Path

from stockade.learn.document import build, merge
from stockade.learn.infer import learn
from stockade.learn.output import check_and_write
from stockade.learn.recording import Recording
from stockade.policy import model as m
from stockade.policy.loader import load_policy


def _rec(sockaddrs: set[tuple[str, int, int, bool]], peers: set[tuple[str, int]]) -> Recording:
    return Recording(
        syscalls=frozenset({("x86_64", n) for n in ("read", "socket", "connect", "exit_group")}),
        values=frozenset({("socket", 0, 2), ("socket", 1, 1)}), paths=frozenset(),
        sockaddrs=frozenset(sockaddrs), started=True, peers=frozenset(peers))


def test_recording_json_carries_the_peers() -> None:
    rec = Recording.from_json({"syscalls": [], "peers": [["10.1.2.3", 5432]]}, "x86_64")
    assert rec.peers == frozenset({("10.1.2.3", 5432)})
    assert Recording.from_json({"syscalls": []}, "x86_64").peers == frozenset()  # older runs


def test_peers_become_egress_of_a_private_network(tmp_path: Path) -> None:
    learned = learn(_rec({("connect", 2, 5432, False), ("connect", 2, 53, False)},
                         {("10.1.2.3", 5432), ("10.1.2.3", 5433), ("10.0.0.53", 53)}), "x86_64")
    doc = build(learned, name="t", description="d", base=None, base_ref=None,
                default_action="kill", resources={}, recorded_under=load_policy("default"))
    assert doc["network"]["mode"] == "private"
    assert doc["network"]["egress"] == [{"to": "10.0.0.53", "ports": [53]},
                                        {"to": "10.1.2.3", "ports": [5432, 5433]}]
    out = tmp_path / "t.yaml"
    check_and_write(doc, str(out))  # the proposal is a valid policy
    net = load_policy(str(out)).network
    assert net.egress == (m.EgressRule("10.0.0.53/32", (53,)),
                          m.EgressRule("10.1.2.3/32", (5432, 5433)))


def test_with_a_base_the_egress_is_added_too() -> None:
    learned = learn(_rec({("connect", 2, 443, False)}, {("10.9.9.9", 443)}), "x86_64")
    doc = build(learned, name="t", description="d", base=load_policy("default"),
                base_ref="default", default_action="kill", resources={})
    assert doc["network"]["mode"] == "private"
    assert doc["network"]["egress"] == [{"to": "10.9.9.9", "ports": [443]}]


def test_an_ipv6_peer_still_needs_the_hosts_network() -> None:
    learned = learn(_rec({("connect", 10, 443, False), ("connect", 2, 443, False)},
                         {("10.9.9.9", 443)}), "x86_64")
    doc = build(learned, name="t", description="d", base=None, base_ref=None,
                default_action="kill", resources={}, recorded_under=load_policy("default"))
    assert doc["network"]["mode"] == "host" and "egress" not in doc["network"]


def test_append_unions_egress_entries() -> None:
    a = {"stockade": 1, "name": "x", "description": "learned",
         "network": {"mode": "private", "egress": [{"to": "10.0.0.1", "ports": [80]}]}}
    b = {"stockade": 1, "name": "x", "description": "learned",
         "network": {"mode": "private", "egress": [{"to": "10.0.0.2", "ports": [80]},
                                                   {"to": "10.0.0.1", "ports": [80]}]}}
    assert merge(a, b)["network"]["egress"] == [{"to": "10.0.0.1", "ports": [80]},
                                                {"to": "10.0.0.2", "ports": [80]}]
