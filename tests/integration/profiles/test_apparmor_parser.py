"""Every generated AppArmor profile passes the real `apparmor_parser -Q -K`.

-Q: parse and compile, do not load (AppArmor need not be active); -K: no cache.
Any parser error fails the test; the only stderr line tolerated is the parser's note
that the kernel has no AppArmor interface (which is this machine's truth).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from _policies import built, with_fs
from _profiles_env import HOST, require_tool

from stockade.errors import Location
from stockade.policy.model import PathEntry, Policy
from stockade.profiles import apparmor

_BENIGN = ("Cache read/write disabled: interface file missing",)


def parse(profile: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    parser = require_tool("apparmor_parser")
    path = tmp_path / "profile"
    path.write_text(profile)
    return subprocess.run([parser, "-Q", "-K", str(path)], capture_output=True, text=True, timeout=60)


def assert_accepted(profile: str, tmp_path: Path) -> None:
    res = parse(profile, tmp_path)
    noise = [line for line in res.stderr.splitlines() if line and not line.startswith(_BENIGN)]
    assert res.returncode == 0 and not noise, f"apparmor_parser rejected the profile:\n{res.stderr}\n{profile}"


def test_examples_pass_the_parser(example_policy: Policy, tmp_path: Path) -> None:
    assert_accepted(apparmor.render_profile(example_policy, HOST), tmp_path)


L = Location("p.yaml")


@pytest.mark.parametrize("fs", [
    {"exec": (PathEntry("/usr/sbin/nginx", L), PathEntry("/usr/lib/**", L))},
    {"writable": (PathEntry("/srv/my data", L), PathEntry("/var/log/*.log", L),
                  PathEntry("/dev/tty[0-9]", L), PathEntry("/etc/{a,b}.conf", L))},
    {"root": "writable", "read_only": (PathEntry("/etc", L),), "deny": (PathEntry("/opt/secret?", L),)},
])
def test_variants_pass_the_parser(fs: dict[str, object], tmp_path: Path) -> None:
    assert_accepted(apparmor.render_profile(with_fs(built("web-api"), **fs), HOST), tmp_path)


def test_the_check_bites(tmp_path: Path) -> None:
    """A broken profile must fail, or the tests above prove nothing."""
    good = apparmor.render_profile(built("web-api"), HOST)
    res = parse(good.replace("capability net_bind_service,", "capability no_such_cap,"), tmp_path)
    assert res.returncode != 0
