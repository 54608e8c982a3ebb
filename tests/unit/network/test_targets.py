"""network.mode private on the other targets, and `explain --reach`."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import yaml

from stockade.cli import main
from stockade.linux.hostfacts import HostFacts
from stockade.policy import model as m
from stockade.policy.loader import load_policy
from stockade.profiles import docker, kubernetes, systemd
from stockade.profiles.network_targets import kube_quantity, reach

HOST = HostFacts(arch="x86_64", kernel=(6, 1), cap_last_cap=40, landlock_abi=6)
JAIL = """
stockade: 1
name: jail
network:
  mode: private
  egress:
    - {to: 10.88.0.0/16, ports: [5432], proto: tcp}
    - {to: pypi.internal, ports: [443]}
    - {to: dns}
  publish: ["127.0.0.1:8080:80"]
  bandwidth: {egress: 10Mbit, ingress: 50Mbit}
"""


@pytest.fixture
def jail(tmp_path: Path) -> m.Policy:
    path = tmp_path / "jail.yaml"
    path.write_text(textwrap.dedent(JAIL))
    return load_policy(str(path))


def test_kubernetes_gets_a_network_policy_and_bandwidth_annotations(jail: m.Policy) -> None:
    art = kubernetes.compile(jail, HOST)
    files = {f.filename: yaml.safe_load(f.text or "") for f in art.files
             if f.filename != "all.yaml"}
    npol = files["networkpolicy.yaml"]["spec"]
    assert npol["podSelector"] == {"matchLabels": {"app.kubernetes.io/name": "jail"}}
    assert npol["policyTypes"] == ["Ingress", "Egress"]
    assert npol["egress"][0] == {"to": [{"ipBlock": {"cidr": "10.88.0.0/16"}}],
                                 "ports": [{"protocol": "TCP", "port": 5432}]}
    assert npol["egress"][1]["to"][0]["podSelector"] == {"matchLabels": {"k8s-app": "kube-dns"}}
    assert len(npol["egress"]) == 2  # the host name cannot be written there...
    assert any("pypi.internal" in w and "no host names" in w for w in art.warnings)  # ...said
    assert npol["ingress"] == [{"ports": [{"protocol": "TCP", "port": 80}]}]
    pod = files["pod.yaml"]
    assert pod["metadata"]["labels"]["app.kubernetes.io/name"] == "jail"
    assert pod["metadata"]["annotations"] == {"kubernetes.io/egress-bandwidth": "10M",
                                              "kubernetes.io/ingress-bandwidth": "50M"}
    assert pod["spec"]["containers"][0]["ports"] == [
        {"containerPort": 80, "hostPort": 8080, "hostIP": "127.0.0.1", "protocol": "TCP"}]
    assert pod["spec"]["hostNetwork"] is False


def test_kubernetes_without_private_mode_is_unchanged() -> None:
    art = kubernetes.compile(load_policy("default"), HOST)
    assert "networkpolicy.yaml" not in {f.filename for f in art.files}


def test_systemd_filters_ip_addresses_and_binds(jail: m.Policy) -> None:
    d, warnings = systemd.directives(jail, HOST)
    got = dict(d)
    assert got["IPAddressDeny"] == "any"
    assert got["IPAddressAllow"] == "10.88.0.0/16 localhost"
    assert (got["SocketBindAllow"], got["SocketBindDeny"]) == ("tcp:80", "any")
    assert "PrivateNetwork" not in got and "RestrictNetworkInterfaces" not in got
    assert "AF_INET" in got["RestrictAddressFamilies"]
    text = "\n".join(warnings)
    for lost in ("no ports or protocols", "pypi.internal", "the resolver", "8080->80",
                 "bandwidth"):
        assert lost in text


def test_systemd_with_nothing_leaving_is_lo_only(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("stockade: 1\nname: closed\nnetwork: {mode: private}\n")
    got = dict(systemd.directives(load_policy(str(path)), HOST)[0])
    assert got["RestrictNetworkInterfaces"] == "lo" and "IPAddressAllow" not in got


def test_docker_publishes_and_says_what_it_cannot(jail: m.Policy) -> None:
    flags = docker.run_flags(jail, HOST)
    i = flags.index("--network")
    assert flags[i:i + 4] == ["--network", "bridge", "-p", "127.0.0.1:8080:80/tcp"]
    art = docker.compile(jail, HOST)
    assert any("network.egress has no `docker run` flag" in w for w in art.warnings)
    assert any("network.bandwidth" in w for w in art.warnings)


def test_network_policy_and_pod_validate_against_kubernetes_schema(jail: m.Policy) -> None:
    kv = pytest.importorskip("kubernetes_validate",
                             reason="pip package kubernetes-validate (test extra)")
    art = kubernetes.compile(jail, HOST)
    docs = {f.filename: yaml.safe_load(f.text or "") for f in art.files
            if f.filename != "all.yaml"}
    for name in ("networkpolicy.yaml", "pod.yaml"):
        kv.validate(docs[name], kv.latest_version(), strict=True)
    broken = dict(docs["networkpolicy.yaml"])
    broken["spec"] = dict(broken["spec"], egress=[{"to": [{"ipBlock": {"cidr": 5}}]}])
    with pytest.raises(kv.ValidationError):  # the check can fail
        kv.validate(broken, kv.latest_version(), strict=True)


def test_kube_quantities() -> None:
    assert [kube_quantity(v) for v in (10**6, 2 * 10**9, 1500, 1234567)] == [
        "1M", "2G", "1500", "1234567"]


@pytest.mark.parametrize(("target", "verdict", "why"), [
    (("10.88.1.2", 5432, "tcp"), "yes", "network.egress[0]"),
    (("10.88.1.2", 5432, "udp"), "no", "no network.egress entry"),
    (("10.88.1.2", 22, "tcp"), "no", "no network.egress entry"),
    (("pypi.internal", 443, "tcp"), "yes", "pinned"),
    (("10.1.1.1", 443, "tcp"), "only-if", "pypi.internal resolves to 10.1.1.1"),
    (("10.0.0.53", 53, "udp"), "yes", "resolver"),
    (("127.0.0.1", 80, "tcp"), "yes", "never the host's"),
])
def test_reach_answers_from_the_egress_entries(jail: m.Policy, target: tuple[str, int, str],
                                               verdict: str, why: str) -> None:
    answer = reach(jail, *target, resolvers=["10.0.0.53/32"])
    assert answer.verdict == verdict and why in answer.why


def test_reach_in_the_other_modes_and_with_allow() -> None:
    assert reach(load_policy("default"),
                 "10.0.0.1", 80, "tcp").verdict == "no"  # loopback
    host = m.Network("host")
    closed = m.Network("private", allow=(m.SocketRule("unix"),))
    base = load_policy("default")
    import dataclasses

    assert reach(dataclasses.replace(base, network=host), "10.0.0.1", 80, "tcp").verdict == "yes"
    answer = reach(dataclasses.replace(base, network=closed), "10.0.0.1", 80, "tcp")
    assert answer.verdict == "no" and "network.allow" in answer.why


def test_explain_reach_on_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "jail.yaml"
    path.write_text(textwrap.dedent(JAIL))
    assert main(["explain", str(path), "--reach", "10.88.0.9:5432", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["reachable"], out["target"]) == ("yes", "10.88.0.9:5432/tcp")
    assert main(["explain", str(path), "--reach", "10.88.0.9"]) == 2
    assert "HOST:PORT" in capsys.readouterr().err


@pytest.mark.parametrize("bad", ["bad_host!:443", "udp:10.88.0.9:5432"])
def test_explain_reach_refuses_what_is_no_host(tmp_path: Path, bad: str,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """Was answered "no" as if it were a host name; now one line naming it, exit 2."""
    path = tmp_path / "jail.yaml"
    path.write_text(textwrap.dedent(JAIL))
    assert main(["explain", str(path), "--reach", bad]) == 2
    err = capsys.readouterr().err
    assert "--reach" in err and bad.rpartition(":")[0] in err and "Traceback" not in err


def test_reach_says_ipv6_never_leaves(jail: m.Policy) -> None:
    answer = reach(jail, "2001:db8::1", 443, "tcp")
    assert answer.verdict == "no" and "IPv6 never leaves" in answer.why
    assert reach(jail, "::1", 80, "tcp").verdict == "yes"  # the sandbox's own lo
