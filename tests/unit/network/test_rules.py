"""What a jail would program, checked without privileges: the nft script, tc lines,
peer resolution, slot arithmetic, the plan data and its cache round trip."""

from __future__ import annotations

from pathlib import Path

import pytest

from stockade.errors import RunnerError
from stockade.policy import model as m
from stockade.runner._record import from_plain, to_plain
from stockade.runner.network import addressing
from stockade.runner.network.nft import delete_script, ruleset
from stockade.runner.network.peers import Allow, nameservers, resolve_peers
from stockade.runner.network.shaping import MIN_BURST, burst_bytes, tc_script
from stockade.runner.network.spec import NetPolicy, net_policy

SLOT = addressing.slot(3)


def test_slots_are_consecutive_30s_of_the_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(addressing.POOL_ENV, raising=False)
    assert (SLOT.network, SLOT.host_addr, SLOT.sandbox_addr) == (
        "10.213.0.12/30", "10.213.0.13", "10.213.0.14")
    assert (SLOT.host_if, SLOT.ifb, SLOT.table) == ("stockade3", "stockade3i", "stockade_3")
    assert len(SLOT.ifb) <= 15 and len(addressing.slot(16383).ifb) <= 15  # IFNAMSIZ
    assert addressing.slot_count() == 16384


@pytest.mark.parametrize("pool", ["10.0.0.0/31", "nonsense", "fd00::/64"])
def test_a_bad_pool_is_refused_by_name(monkeypatch: pytest.MonkeyPatch, pool: str) -> None:
    monkeypatch.setenv(addressing.POOL_ENV, pool)
    with pytest.raises(RunnerError, match="STOCKADE_NET_POOL"):
        addressing.pool()


def test_the_ruleset_denies_by_default_and_allows_each_entry() -> None:
    allows = (Allow("10.88.0.0/16", (5432,), "tcp"), Allow("10.1.1.1/32", (443,), ""),
              Allow("10.2.0.0/16", (), "udp"), Allow("10.3.0.0/16"))
    text = ruleset(SLOT, allows, [("127.0.0.1", 8080, 80, "tcp")])
    rules = [line.strip() for line in text.splitlines()]
    dev = 'iifname "stockade3"'
    # one transaction that replaces whatever table a killed run left in this slot
    assert rules[:3] == ["add table inet stockade_3", "delete table inet stockade_3",
                         "table inet stockade_3 {"]
    for chain in ("forward_filter", "input_filter"):
        body = text.split(f"chain {chain} {{")[1].split("}\n")[0]
        lines = [line.strip() for line in body.splitlines() if line.strip()]
        assert lines[1:4] == [f"{dev} ip saddr != 10.213.0.14 drop",  # no spoofing
                              f"{dev} meta nfproto ipv6 drop",
                              f"{dev} ct state established,related accept"]
        assert f"{dev} ip daddr 10.88.0.0/16 tcp dport {{ 5432 }} accept" in lines
        assert f"{dev} ip daddr 10.1.1.1/32 tcp dport {{ 443 }} accept" in lines
        assert f"{dev} ip daddr 10.1.1.1/32 udp dport {{ 443 }} accept" in lines
        assert f"{dev} ip daddr 10.2.0.0/16 meta l4proto udp accept" in lines
        assert f"{dev} ip daddr 10.3.0.0/16 accept" in lines
        # and the rest is refused loudly, after every allow
        rejects = [i for i, line in enumerate(lines) if line.startswith(dev) and "reject" in line]
        accepts = [i for i, line in enumerate(lines) if line.startswith(dev) and "accept" in line]
        assert rejects and min(rejects) > max(accepts)
    assert 'ip daddr 127.0.0.1 tcp dport 8080 dnat ip to 10.213.0.14:80' in text
    assert 'oifname "stockade3" ip saddr 127.0.0.0/8 masquerade' in text
    assert 'oifname "stockade3" ct status dnat tcp dport 80 accept' in text


def test_no_egress_means_only_rejects_and_no_publish_chains() -> None:
    text = ruleset(SLOT, (), ())
    assert "ip daddr" not in text and "publish_in" not in text
    assert "reject with tcp reset" in text
    assert "ip saddr 127.0.0.0/8" not in text  # route_localnet only with a loopback publish


def test_delete_is_idempotent_for_nft_1_0_6() -> None:
    assert delete_script("stockade_3") == ("add table inet stockade_3\n"
                                           "delete table inet stockade_3\n")


def test_shaping_uses_the_host_side_devices() -> None:
    assert tc_script(SLOT, 0, 0) == ""
    lines = tc_script(SLOT, 10_000_000, 50_000_000).splitlines()
    assert lines[0].startswith("qdisc add dev stockade3 root tbf rate 50000000bit")
    assert "mirred egress redirect dev stockade3i" in lines[2]
    assert lines[3].startswith("qdisc add dev stockade3i root tbf rate 10000000bit")
    assert burst_bytes(8_000) == MIN_BURST and burst_bytes(10**10) == 10**10 // 800
    assert all("latency 50ms" in line for line in lines if " tbf " in line)


def test_rootless_shaping_queues_what_local_tcp_sends_at_once() -> None:
    """On the sandbox's own eth0 a 50 ms queue dropped and TCP fell to a tenth of the
    rate: room for one socket's small-queue share out, one receive window in."""
    from stockade.runner.network.shaping import (
        LOCAL_IN_QUEUE_BYTES,
        LOCAL_OUT_QUEUE_BYTES,
        shaping_lines,
    )

    out, _, _, into = shaping_lines("eth0", "eth0i", out_bps=10_000_000, in_bps=50_000_000,
                                    local=True).splitlines()
    assert out.endswith(f"limit {burst_bytes(10_000_000) + LOCAL_OUT_QUEUE_BYTES}")
    assert into.startswith("qdisc add dev eth0i root tbf rate 50000000bit")
    assert into.endswith(f"limit {burst_bytes(50_000_000) + LOCAL_IN_QUEUE_BYTES}")


def test_nsenter_gets_the_path_of_its_command(monkeypatch: pytest.MonkeyPatch) -> None:
    """nsenter looked `nft` up in the caller's PATH, which has no sbin for an ordinary
    user: the rootless run failed "nsenter: failed to execute nft"."""
    from stockade.runner.network import tools

    monkeypatch.setattr(tools, "_which", lambda name: {"nft": "/usr/sbin/nft"}.get(name))
    argv = ["nsenter", "--net=/proc/1/ns/net", "--", "nft", "-f", "-"]
    assert tools._inner_resolved(argv) == [*argv[:3], "/usr/sbin/nft", "-f", "-"]
    assert tools._inner_resolved(["tc", "-batch", "-"]) == ["tc", "-batch", "-"]
    with pytest.raises(LookupError):
        tools._inner_resolved(["nsenter", "--", "tc", "-batch", "-"])


def test_names_resolve_once_and_dns_comes_from_resolv_conf(tmp_path: Path) -> None:
    conf = tmp_path / "resolv.conf"
    conf.write_text("search x\nnameserver 10.0.0.53\nnameserver fd00::53\n")
    net = NetPolicy(egress=(("db.test", (5432,), "tcp"), ("dns", (53,), ""),
                            ("10.9.0.0/16", (), "")))
    asked: list[str] = []

    def lookup(name: str) -> list[str]:
        asked.append(name)
        return ["10.5.0.1", "10.5.0.2"]

    got = resolve_peers(net, str(conf), lookup)
    assert asked == ["db.test"]
    assert got == (Allow("10.5.0.1/32", (5432,), "tcp", "db.test"),
                   Allow("10.5.0.2/32", (5432,), "tcp", "db.test"),
                   Allow("10.0.0.53/32", (53,), "", "dns"),  # the IPv6 resolver is skipped
                   Allow("10.9.0.0/16", (), "", "10.9.0.0/16"))


@pytest.mark.parametrize(("text", "why"), [
    ("nameserver 127.0.0.53\n", "loopback"), ("# none\n", "no IPv4 nameserver")])
def test_an_unusable_resolver_is_refused_by_name(tmp_path: Path, text: str, why: str) -> None:
    conf = tmp_path / "resolv.conf"
    conf.write_text(text)
    with pytest.raises(RunnerError, match=why):
        nameservers(str(conf))


def test_only_private_mode_has_a_net_plan_and_it_survives_the_cache() -> None:
    assert net_policy(m.Network("loopback")) is None
    net = net_policy(m.Network("private", egress=(m.EgressRule("10.0.0.0/8", (80,), "tcp"),),
                               publish=(m.Publish("127.0.0.1", 8080, 80),),
                               bandwidth=m.Bandwidth(1_000_000)))
    assert net == NetPolicy((("10.0.0.0/8", (80,), "tcp"),), (("127.0.0.1", 8080, 80, "tcp"),),
                            1_000_000, 0)
    records = {"NetPolicy": NetPolicy}
    assert from_plain(to_plain(net, records), records) == net


def test_rootless_refuses_what_it_cannot_hold(monkeypatch: pytest.MonkeyPatch) -> None:
    from stockade.runner.network import rootless, tools

    net = NetPolicy()
    assert "drop NET_ADMIN" in (rootless.refusal(net, 1 << rootless.CAP_NET_ADMIN) or "")
    monkeypatch.setattr(tools, "_which", lambda name: None)
    assert "needs pasta" in (rootless.refusal(net, 0) or "")
    monkeypatch.setattr(tools, "_which", lambda name: "/usr/bin/" + name)
    assert rootless.refusal(net, 0) is None


def test_a_rootless_plan_with_net_admin_is_refused_before_anything_runs(tmp_path: Path) -> None:
    from stockade.policy.loader import load_policy
    from stockade.runner.plan import RunSpec, build_plan
    from stockade.runner.prepare import policy_part

    path = tmp_path / "p.yaml"
    path.write_text("stockade: 1\nname: p\nextends: [default]\n"
                    "capabilities: {add: [NET_ADMIN]}\nnetwork: {mode: private}\n")
    part = policy_part(load_policy(str(path)))
    with pytest.raises(RunnerError, match="NET_ADMIN"):
        build_plan(part, RunSpec(argv=("/bin/true",)), euid=1000)
    assert build_plan(part, RunSpec(argv=("/bin/true",)), euid=0).policy.net is not None


def test_rootless_rules_filter_everything_but_lo_inside() -> None:
    from stockade.runner.network.rootless import inside_ruleset

    text = inside_ruleset((Allow("10.1.0.0/16", (443,), "tcp"),))
    assert "type filter hook output priority -1; policy accept;" in text
    lines = [line.strip() for line in text.splitlines()]
    assert 'oifname != "lo" ip daddr 10.1.0.0/16 tcp dport { 443 } accept' in lines
    assert lines.index('oifname != "lo" meta l4proto tcp reject with tcp reset') > lines.index(
        'oifname != "lo" ip daddr 10.1.0.0/16 tcp dport { 443 } accept')
