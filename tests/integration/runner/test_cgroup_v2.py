"""cgroup v2 for real, on whatever v2 mount this host has (here: the hybrid 'unified'
mount with no resource controllers). Limits need controllers; the run's lifecycle
(create, attach, cpu.stat usage, cgroup.kill, remove) does not."""

from __future__ import annotations

import os

import pytest

import stockade
from stockade.errors import RunnerError
from stockade.policy.model import Policy
from stockade.runner.cgroups import Hierarchy, detect, is_cgroup2
from tests.conftest import require_root
from tests.integration.runner.conftest import no_resources, with_resources

pytestmark = pytest.mark.root
ENV = {"PATH": "/usr/bin:/bin"}


@pytest.fixture
def v2(monkeypatch: pytest.MonkeyPatch) -> Hierarchy:
    require_root()
    h = detect()
    if h.v2_mount is None or not is_cgroup2(h.v2_mount):
        pytest.skip("no cgroup2 mount on this host")
    own = os.path.join(h.v2_mount, h.v2_own.lstrip("/"))
    if not os.access(own, os.W_OK):
        pytest.skip(f"{own} is not writable")
    forced = Hierarchy("v2", (), h.v2_mount, h.v2_own)
    from stockade.runner import launcher

    monkeypatch.setattr(launcher, "detect_cached", lambda refresh=False: forced)
    return forced


def test_run_in_real_v2_cgroup(v2: Hierarchy, default_policy: Policy, leak_check: None) -> None:
    res = stockade.run(["/bin/sh", "-c", "cat /proc/self/cgroup; i=0; "
                        "while [ $i -lt 200000 ]; do i=$((i+1)); done"],
                       policy=no_resources(default_policy), env=ENV)
    assert res.exit_code == 0
    assert res.cgroup == "v2"
    # the payload's loop is counted: it was born in the cgroup (clone3)
    assert res.cpu_time_ns is not None and res.cpu_time_ns > 2_000_000


def test_v2_limit_without_controller_fails_closed(v2: Hierarchy, default_policy: Policy,
                                                  leak_check: None) -> None:
    with open(os.path.join(v2.v2_mount or "", "cgroup.controllers")) as fh:
        if "memory" in fh.read().split():
            pytest.skip("the memory controller is available in v2 here")
    with pytest.raises(RunnerError) as exc:
        stockade.run(["/bin/true"], policy=with_resources(default_policy, memory=64 << 20),
                     env=ENV)
    assert exc.value.step == "cgroups" and "memory controller" in exc.value.message
