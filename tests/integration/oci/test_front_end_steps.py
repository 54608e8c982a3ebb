"""The set-up steps the executor took over from Python (executor/steps/): a plan with
an exec label is now stored and carried out by the front end itself, and it enforces
what the Python path enforces. (Hostname, sysctls and loopback, now the same steps,
are compared with the Python path by every differential variant in test_fastpath.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.oci.conftest import Bundles, leftovers, oci
from tests.integration.oci.test_fastpath import REQUIRE, _bundle, entries, fe

LABEL = "stockade-test-no-such-profile"


def _apparmor_enabled() -> bool:
    try:
        return Path("/sys/module/apparmor/parameters/enabled").read_text().strip() == "Y"
    except OSError:
        return False


def test_an_exec_label_is_carried_out_by_the_front_end(frontend_bin: str, bundles: Bundles,
                                                       oci_root: Path) -> None:
    """On this host no such profile can be applied: the Python path fails closed (step
    lsm); the front end now stores the plan, runs the label step itself (no fallback:
    STOCKADE_FAST=require), fails closed the same way and leaves nothing behind."""
    if _apparmor_enabled():
        pytest.skip("AppArmor is enabled: labels are proven by the LSM lab (tests/lab)")
    bundle = _bundle(bundles, ["true"])
    cfg_path = Path(bundle) / "config.json"
    import json

    cfg = json.loads(cfg_path.read_text())
    cfg["process"]["apparmorProfile"] = LABEL
    cfg_path.write_text(json.dumps(cfg))
    ref = oci(oci_root, "create", "--bundle", bundle, "py")  # the Python path alone
    assert ref.returncode != 0 and "lsm" in ref.stderr, ref.stderr
    assert not (oci_root / "stockade" / "py").exists() and not leftovers("py")
    first = fe(frontend_bin, oci_root, "--debug", "create", "--bundle", bundle, "c1",
               files=True)
    assert "fast plan: stored" in first.stderr, first.stderr  # was: not stored (a label)
    assert first.returncode == ref.returncode  # the front end failed, Python reported
    (plan,) = entries(oci_root)
    assert json.loads(plan.read_bytes())["lsm"]["apparmor_profile"] == LABEL
    mine = fe(frontend_bin, oci_root, "create", "--bundle", bundle, "c2", env=REQUIRE,
              files=True)
    assert mine.returncode == 125, mine.stderr  # the front end's own attempt, no fallback
    assert "the container's process failed: lsm: " in mine.stderr, mine.stderr
    assert LABEL in mine.stderr
    assert not (oci_root / "stockade" / "c2").exists() and not leftovers("c2")
    again = fe(frontend_bin, oci_root, "create", "--bundle", bundle, "c3", files=True)
    assert again.returncode == ref.returncode  # undone, then Python reports as before
    assert not (oci_root / "stockade" / "c3").exists() and not leftovers("c3")
