from __future__ import annotations

import dataclasses

import pytest
from _policies import with_fs

from stockade.errors import Location, StockadeError
from stockade.policy.model import Landlock, Lsm, PathEntry, Policy
from stockade.profiles import landlock as ll

L = Location("p.yaml", 1, 1)


def test_required_refuses_without_landlock(batch: Policy) -> None:
    assert batch.lsm.landlock.mode == "required"
    with pytest.raises(StockadeError, match="required.*not available") as exc:
        ll.landlock_rules(batch, 0)
    assert exc.value.exit_code == 2


def test_best_effort_without_landlock_says_so(web_api: Policy) -> None:
    rs = ll.landlock_rules(web_api, 0)
    assert not rs.enabled and rs.path_rules == () and "not available" in rs.dropped[0]


def test_off(web_api: Policy) -> None:
    rs = ll.landlock_rules(dataclasses.replace(web_api, lsm=Lsm(landlock=Landlock("off"))), 7)
    assert not rs.enabled


@pytest.mark.parametrize("abi", [1, 2, 3, 4, 5, 6, 7, 9])
def test_handled_rights_follow_the_abi(web_api: Policy, abi: int) -> None:
    rs = ll.landlock_rules(web_api, abi)
    supported = ll.FS_BY_ABI[min(abi, ll.NEWEST_KNOWN_ABI)]
    assert rs.handled_access_fs & ~int(supported) == 0
    assert bool(rs.handled_access_fs & ll.FsAccess.REFER) == (abi >= 2)
    assert bool(rs.handled_access_fs & ll.FsAccess.TRUNCATE) == (abi >= 3)
    assert not rs.handled_access_fs & ll.FsAccess.IOCTL_DEV  # not a policy word
    if abi >= 4:
        assert rs.handled_access_net == ll.NetAccess.BIND_TCP
        assert [r.port for r in rs.net_rules] == [8080]
    else:
        assert rs.handled_access_net == 0 and rs.net_rules == ()
        assert any("network.bind" in d for d in rs.dropped)
    for rule in rs.path_rules:
        assert rule.access & ~rs.handled_access_fs == 0
    if abi > ll.NEWEST_KNOWN_ABI:
        assert any("newer than stockade knows" in d for d in rs.dropped)


def test_rules_for_web_api(web_api: Policy) -> None:
    rs = ll.landlock_rules(web_api, 7)
    rules = {r.path: r for r in rs.path_rules}
    assert set(rules) == {"/", "/dev", "/tmp", "/var/cache/web"}
    assert not rules["/"].access & ll.FsAccess.WRITE_FILE
    assert rules["/tmp"].access & ll.FsAccess.WRITE_FILE
    assert rules["/dev"].access & ll.FsAccess.WRITE_FILE and not rules["/dev"].access & ll.FsAccess.MAKE_REG
    assert any("filesystem.deny[/etc/shadow]" in d for d in rs.dropped)


def test_exec_list_and_globs(web_api: Policy) -> None:
    p = with_fs(web_api, exec=(PathEntry("/usr/lib/**", L), PathEntry("/usr/*/bin", L)))
    rs = ll.landlock_rules(p, 7)
    rules = {r.path: r for r in rs.path_rules}
    assert not rules["/"].access & ll.FsAccess.EXECUTE
    assert rules["/usr/lib"].access & ll.FsAccess.EXECUTE
    assert any("/usr/*/bin" in d and "glob" in d for d in rs.dropped)


def test_writable_root_cannot_take_write_away(legacy: Policy) -> None:
    rs = ll.landlock_rules(legacy, 7)
    assert any("filesystem.read_only[/etc]" in d for d in rs.dropped)
    assert {r.path for r in rs.path_rules} == {"/", "/tmp"}


def test_frozen_and_deterministic(web_api: Policy) -> None:
    a, b = ll.landlock_rules(web_api, 5), ll.landlock_rules(web_api, 5)
    assert a == b
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.abi = 3  # type: ignore[misc]
