"""The binding must never pretend: where AppArmor is not active it says so."""

from __future__ import annotations

import pytest

from stockade.profiles import apparmor_binding as b


def test_status_is_honest() -> None:
    st = b.status()
    try:
        with open("/sys/module/apparmor/parameters/enabled") as fh:
            really = fh.read().strip() == "Y"
    except OSError:
        really = False
    assert st.enabled == really
    if not st.enabled:
        assert st.reason and st.reason != "enabled"


def test_change_onexec_refuses_when_inactive() -> None:
    if b.is_enabled():
        pytest.skip("AppArmor is active here; the refusal path cannot be exercised")
    with pytest.raises(b.AppArmorUnavailable, match="cannot switch to AppArmor profile 'web-api'"):
        b.change_onexec("web-api")
    with pytest.raises(b.AppArmorUnavailable):
        b.current_label()


def test_current_label_when_active() -> None:
    if not b.is_enabled():
        pytest.skip(f"AppArmor is not active on this machine: {b.status().reason}")
    label = b.current_label()
    assert label.label
