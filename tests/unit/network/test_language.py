"""network.mode private, egress, publish, bandwidth: what loads, and each bad value as one
located error with a suggestion."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from stockade.errors import PolicyError
from stockade.policy import model as m
from stockade.policy.loader import load_policy
from stockade.policy.schema import json_schema

FULL = """
stockade: 1
name: jail
extends: [default]
network:
  mode: private
  egress:
    - {to: 10.88.0.0/16, ports: [5432], proto: tcp}
    - {to: pypi.internal, ports: [443]}
    - {to: dns}
  publish: ["127.0.0.1:8080:80", "9090:90/udp"]
  bandwidth: {egress: 10Mbit, ingress: 50Mbit}
"""


def load(tmp_path: Path, text: str, name: str = "p.yaml") -> m.Policy:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return load_policy(str(path))


def error(tmp_path: Path, text: str) -> PolicyError:
    with pytest.raises(PolicyError) as info:
        load(tmp_path, text)
    return info.value


def network(body: str) -> str:
    return "stockade: 1\nname: jail\nnetwork:\n" + textwrap.indent(textwrap.dedent(body), "  ")


def test_the_issue_example_loads_as_written(tmp_path: Path) -> None:
    net = load(tmp_path, FULL).network
    assert net.mode == "private"
    assert net.egress == (m.EgressRule("10.88.0.0/16", (5432,), "tcp"),
                          m.EgressRule("pypi.internal", (443,), None),
                          m.EgressRule("dns", (53,), None))
    assert [e.kind for e in net.egress] == ["cidr", "name", "dns"]
    assert net.publish == (m.Publish("127.0.0.1", 8080, 80, "tcp"),
                           m.Publish("127.0.0.1", 9090, 90, "udp"))  # no address: loopback
    assert net.bandwidth == m.Bandwidth(10_000_000, 50_000_000)


def test_a_single_address_becomes_a_32(tmp_path: Path) -> None:
    net = load(tmp_path, network("mode: private\negress: [{to: 10.1.2.3}]")).network
    assert net.egress == (m.EgressRule("10.1.2.3/32"),)


def test_layers_union_egress_and_override_bandwidth(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text(network("""
        mode: private
        egress: [{to: 10.0.0.0/8, ports: [80]}]
        bandwidth: {egress: 1Mbit, ingress: 2Mbit}
        """))
    net = load(tmp_path, network("""
        egress: [{to: 10.0.0.0/8, ports: [80]}, {to: db.internal}]
        bandwidth: {egress: 5Mbit}
        """).replace("name: jail\n", "name: jail\nextends: [base.yaml]\n")).network
    assert [e.to for e in net.egress] == ["10.0.0.0/8", "db.internal"]
    assert net.bandwidth == m.Bandwidth(5_000_000, 2_000_000)


@pytest.mark.parametrize(("body", "problem", "hint"), [
    ("mode: privat", "invalid value", None),
    ("mode: private\negres: []", "unknown key", "did you mean 'egress'?"),
    ("mode: private\negress: [{to: 10.88.0.1/16}]", "CIDR has host bits set",
     "did you mean '10.88.0.0/16'?"),
    ("mode: private\negress: [{to: dsn}]", "invalid egress target", "did you mean 'dns'?"),
    ("mode: private\negress: [{to: 'bad_name!'}]", "invalid egress target", None),
    ("mode: private\negress: [{to: 'fd00::/8'}]", "IPv6 egress is not supported yet", None),
    ("mode: private\negress: [{to: 10.0.0.0/8, ports: [0]}]", "invalid value", None),
    ("mode: private\negress: [{to: 10.0.0.0/8, proto: icmp}]", "invalid value", None),
    ("mode: private\negress: [{to: dns, ports: [5353]}]", "dns means port 53", None),
    ("mode: private\npublish: ['0.0.0.0:80:80']", "publish needs one host address", None),
    ("mode: private\npublish: ['80:80/tpc']", "unknown publish protocol", "did you mean 'tcp'?"),
    ("mode: private\npublish: ['80']", "invalid publish entry", None),
    ("mode: private\npublish: ['127.0.0.1:8080:80', '127.0.0.1:8080:81']",
     "host port published twice", None),
    ("mode: private\nbandwidth: {egress: 10}", "invalid value", None),
    ("mode: private\nbandwidth: {egress: '10'}", "invalid rate", None),
    ("mode: private\nbandwidth: {egress: 10Mbt}", "invalid rate", "did you mean 'mbit'?"),
    ("mode: private\nbandwidth: {egress: 1bit}", "rate out of range", None),
    ("mode: loopback\negress: [{to: 10.0.0.0/8}]", "network.egress needs a private network",
     "set network.mode: private, or drop network.egress"),
    ("mode: host\nbandwidth: {egress: 1Mbit}", "network.bandwidth needs a private network", None),
    ("mode: private\nallow: [unix]\negress: [{to: 10.0.0.0/8}]", "network.allow has no inet",
     "add \"inet\" to network.allow"),
    ("mode: private\nbind: [8080]\npublish: ['8080:80']",
     "a published port the sandbox may not bind", "add 80 to network.bind"),
])
def test_bad_network_values_are_one_located_error(tmp_path: Path, body: str, problem: str,
                                                  hint: str | None) -> None:
    err = error(tmp_path, network(body))
    assert problem in str(err)
    assert str(tmp_path / "p.yaml") in str(err)  # file:line of the key
    if hint is not None:
        assert hint in str(err)


def test_the_json_schema_offers_private_and_its_keys() -> None:
    spec = json_schema()["$defs"]["NetworkSpec"]
    mode = spec["properties"]["mode"]["anyOf"][0]["enum"]
    assert "private" in mode
    assert {"egress", "publish", "bandwidth"} <= set(spec["properties"])
    assert set(json_schema()["$defs"]["EgressSpec"]["properties"]) == {"to", "ports", "proto"}
