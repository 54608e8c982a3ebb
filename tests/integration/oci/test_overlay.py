"""`--policy`: a stockade policy laid over config.json; the stricter of the two wins."""

from __future__ import annotations

from pathlib import Path

from tests.integration.oci.conftest import Bundles, oci

PROBE = "grep -E '^(CapBnd|NoNewPrivs|Seccomp_filters):' /proc/self/status; cat /proc/self/uid_map"


def test_policy_tightens_a_loose_bundle(bundles: Bundles, oci_root: Path) -> None:
    cfg = bundles.config()
    cfg["process"]["args"] = ["sh", "-c", PROBE]
    cfg["process"]["noNewPrivileges"] = False
    caps = ["CAP_SYS_ADMIN", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
    cfg["process"]["capabilities"] = {k: caps for k in ("bounding", "effective", "permitted")}
    b = bundles.make(cfg)
    plain = oci(oci_root, "run", "--bundle", str(b), "ov1")
    assert plain.returncode == 0, plain.stderr
    assert "NoNewPrivs:\t0" in plain.stdout and "00000000002" in plain.stdout  # SYS_ADMIN
    merged = oci(oci_root, "run", "--policy", "default", "--bundle", str(b), "ov2")
    assert merged.returncode == 0, merged.stderr
    lines = dict(line.split(":\t") for line in merged.stdout.splitlines() if ":\t" in line)
    bnd = int(lines["CapBnd"], 16)
    assert not bnd >> 21 & 1  # CAP_SYS_ADMIN: not in the default policy
    assert bnd >> 5 & 1  # CAP_KILL: in both
    assert lines["NoNewPrivs"] == "1" and int(lines["Seccomp_filters"]) >= 1
    # the policy's user namespace: a free range of the id pool (runner.idalloc)
    outside = [int(f[1]) for f in map(str.split, merged.stdout.splitlines())
               if len(f) == 3 and f[0] == "0"]
    assert outside and outside[0] >= 2000000000 and (outside[0] - 2000000000) % 65536 == 0


def test_dry_run_shows_the_merge(bundles: Bundles, oci_root: Path) -> None:
    b = bundles.make()
    r = oci(oci_root, "create", "--policy", "default", "--dry-run", "--bundle", str(b), "dr1")
    assert r.returncode == 0, r.stderr
    assert "merge       caps.bounding:" in r.stdout and "noNewPrivileges" in r.stdout
    assert "seccomp" in r.stdout and "mount" in r.stdout
    assert oci(oci_root, "state", "dr1").returncode != 0  # nothing was created
