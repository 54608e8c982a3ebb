from __future__ import annotations

import dataclasses

import pytest
from _policies import with_fs

from stockade.errors import Location, PolicyError
from stockade.linux.hostfacts import HostFacts
from stockade.policy.model import AppArmor, Lsm, PathEntry, Policy
from stockade.profiles import apparmor

L = Location("p.yaml", 3, 5, "filesystem.exec[0]")


def test_profile_name_and_rules(web_api: Policy, host: HostFacts) -> None:
    text = apparmor.render_profile(web_api, host)
    assert "profile web-api flags=(attach_disconnected,mediate_deleted) {" in text
    assert "  capability net_bind_service,\n" in text
    assert "  network inet stream,\n" in text and "  network unix,\n" in text
    assert "  /tmp{,/**} rwlk," in text
    assert "  audit deny /etc/shadow{,/**} rwklx," in text  # the policy's own: logged
    assert "  /** rmix," in text  # read-only root, no exec list
    assert "  deny mount,\n" in text and "  deny @{PROC}/sysrq-trigger rwklx,\n" in text
    assert "include <abstractions/base>" in text


def test_complain_mode_and_writable_root(legacy: Policy, host: HostFacts) -> None:
    text = apparmor.render_profile(legacy, host)
    assert "flags=(attach_disconnected,mediate_deleted,complain)" in text
    assert "  /** rwlkmix," in text
    assert "  audit deny /etc{,/**} wl," in text  # read_only under a writable root
    for cap in ("chown", "dac_override", "setgid", "setuid", "net_bind_service"):
        assert f"  capability {cap},\n" in text


def test_exec_list_restricts_execution(web_api: Policy, host: HostFacts) -> None:
    p = with_fs(web_api, exec=(PathEntry("/usr/sbin/nginx", L), PathEntry("/usr/lib/**", L)))
    text = apparmor.render_profile(p, host)
    assert "  /** rm," in text
    assert "  /usr/sbin/nginx rmix," in text and "  /usr/lib/** rmix," in text


def test_no_socket_families_no_network_rules(batch: Policy, host: HostFacts) -> None:
    text = apparmor.render_profile(batch, host)
    assert "network unix," in text  # strict preset allows unix
    assert "network inet" not in text


def test_paths_with_spaces_are_quoted(web_api: Policy, host: HostFacts) -> None:
    p = with_fs(web_api, writable=(PathEntry("/srv/my data", L),))
    assert '  "/srv/my data{,/**}" rwlk,' in apparmor.render_profile(p, host)


def test_inexpressible_glob_is_rejected_with_location(web_api: Policy, host: HostFacts) -> None:
    p = with_fs(web_api, exec=(PathEntry("/usr/{a,{b,c}}", L),))
    with pytest.raises(PolicyError, match=r"p.yaml:3:5: filesystem.exec\[0\]: nested"):
        apparmor.compile(p, host)


def test_deterministic(example_policy: Policy, host: HostFacts) -> None:
    a = apparmor.compile(example_policy, host)
    b = apparmor.compile(example_policy, host)
    assert a.files[0].content() == b.files[0].content()


def test_missing_lsm_section_is_a_note(web_api: Policy, host: HostFacts) -> None:
    # a note, not a warning: the profile carries the policy, so `compile --strict` passes
    p = dataclasses.replace(web_api, lsm=Lsm(apparmor=None))
    art = apparmor.compile(p, host)
    assert not art.warnings and any("no lsm.apparmor section" in n for n in art.notes)
    p = dataclasses.replace(web_api, lsm=Lsm(apparmor=AppArmor("enforce")))
    assert not any("lsm.apparmor" in n for n in apparmor.compile(p, host).notes)


def test_bad_profile_name(web_api: Policy, host: HostFacts) -> None:
    with pytest.raises(PolicyError, match="not a valid profile name"):
        apparmor.compile(dataclasses.replace(web_api, name="Bad Name"), host)
