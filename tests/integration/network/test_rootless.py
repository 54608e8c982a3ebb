"""network.mode private as an unprivileged user (nobody, via setpriv): pasta for the
uplink, the rules inside the sandbox's namespace; nothing of pasta left afterwards."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.network.conftest import BIND, PROBE, World

HERE = Path(__file__).resolve().parent
NOBODY = 65534


def _nobody(world: World, argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(world.in_host(["setpriv", "--reuid", str(NOBODY), "--regid",
                                         str(NOBODY), "--clear-groups", *argv]),
                          capture_output=True, text=True, env=env, timeout=60, check=False)


@pytest.fixture
def nobody_env(world: World) -> Iterator[dict[str, str]]:
    for tool in ("setpriv", "pasta"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (scripts/dev installs passt, util-linux)")
    probe = _nobody(world, ["unshare", "--user", "--map-root-user", "--net", "true"], {})
    if probe.returncode != 0:
        pytest.skip(f"unprivileged user namespaces are not available: {probe.stderr.strip()}")
    env = {"PYTHONPATH": f"{HERE.parents[2]}:{HERE.parents[2] / 'src'}",
           "PYTHONDONTWRITEBYTECODE": "1", "HOME": "/nonexistent",
           # an ordinary Debian user's PATH: no sbin directory, where nft and tc live
           "PATH": "/usr/local/bin:/usr/bin:/bin"}
    probe = _nobody(world, [sys.executable, "-c", "import stockade.api, pydantic"], env)
    if probe.returncode != 0:
        pytest.skip(f"nobody cannot run this interpreter and checkout: {probe.stderr[-200:]}")
    # pytest's directories are 0700: nobody gets a directory of its own for the policy
    shared = Path(tempfile.mkdtemp(prefix="stockade-rootless-net-"))
    shared.chmod(0o755)
    (shared / "cache").mkdir()
    os.chown(shared / "cache", NOBODY, NOBODY)
    try:
        yield dict(env, STOCKADE_CACHE_DIR=str(shared / "cache"), SHARED=str(shared))
    finally:
        shutil.rmtree(shared, ignore_errors=True)


def test_rootless_egress_is_enforced_inside_and_pasta_ends(world: World,
                                                           nobody_env: dict[str, str]) -> None:
    world.serve_peer("8080", "8081")
    policy = Path(nobody_env["SHARED"]) / "jail.yaml"
    shutil.copy(world.policy("""
mode: private
egress: [{to: 10.99.0.2/32, ports: [8080]}]
"""), policy)
    policy.chmod(0o644)
    done = _nobody(world, [sys.executable, str(HERE / "rootless_payload.py"), str(policy), BIND,
                           "/usr/bin/python3", PROBE, "10.99.0.2:8080", "10.99.0.3:8080",
                           "10.99.0.2:8081"], nobody_env)
    assert done.returncode == 0, done.stderr[-2000:]
    got = dict(line.split(" ", 1) for line in done.stdout.splitlines())
    assert got == {"10.99.0.2:8080": "ok", "10.99.0.3:8080": "ECONNREFUSED",
                   "10.99.0.2:8081": "ECONNREFUSED"}
    import time

    deadline = time.monotonic() + 10  # the run sent it SIGTERM: it is on its way out
    while subprocess.run(["pgrep", "-u", str(NOBODY), "-f", "pasta"], capture_output=True,
                         check=False).returncode == 0:
        assert time.monotonic() < deadline, "the run left its pasta running"
        time.sleep(0.05)


def test_a_killed_rootless_runner_leaves_a_pasta_that_gc_ends(world: World,
                                                             nobody_env: dict[str, str]) -> None:
    import signal
    import time

    policy = Path(nobody_env["SHARED"]) / "jail.yaml"
    shutil.copy(world.policy("mode: private"), policy)
    policy.chmod(0o644)
    runner = subprocess.Popen(world.in_host([
        "setpriv", "--reuid", str(NOBODY), "--regid", str(NOBODY), "--clear-groups",
        sys.executable, str(HERE / "rootless_payload.py"), str(policy), BIND, "/bin/sleep", "60"]),
        env=nobody_env)

    def pastas() -> list[str]:
        return subprocess.run(["pgrep", "-u", str(NOBODY), "-f", "pasta"], capture_output=True,
                              text=True, check=False).stdout.split()

    try:
        deadline = time.monotonic() + 20
        while not pastas():
            assert time.monotonic() < deadline, "pasta never started"
            time.sleep(0.05)
        time.sleep(0.3)  # its record is written right after it starts
        runner.send_signal(signal.SIGKILL)
        runner.wait()
    finally:
        runner.kill()
        runner.wait()
    assert pastas()  # pasta does not end with the namespace of a process it joined
    done = _nobody(world, [sys.executable, "-m", "stockade", "gc"], nobody_env)
    assert done.returncode == 0 and "pasta" in done.stdout, done.stdout + done.stderr
    deadline = time.monotonic() + 10
    while pastas():
        assert time.monotonic() < deadline, "gc did not end the pasta"
        time.sleep(0.05)


def test_rootless_bandwidth_under_stockade_run_holds_within_15_percent(
        world: World, nobody_env: dict[str, str]) -> None:
    """`stockade run` itself as the user: the buckets on the sandbox's own eth0 held a
    50 ms queue, which dropped (TCP fell to 1.6 of 10 Mbit out, 6 of 50 in), and nft/tc
    were not found on a PATH without sbin (nsenter looked them up itself)."""
    import json
    import time

    if shutil.which("iperf3") is None:
        pytest.skip("iperf3 is not installed (scripts/dev installs it)")
    server = subprocess.Popen(world.in_peer(["iperf3", "-s", "-B", "10.99.0.2"]),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    world.servers.append(server)  # type: ignore[arg-type]
    policy = Path(nobody_env["SHARED"]) / "rates.yaml"
    shutil.copy(world.policy("""
mode: private
egress: [{to: 10.99.0.2/32, ports: [5201], proto: tcp}]
bandwidth: {egress: 20Mbit, ingress: 40Mbit}
"""), policy)
    policy.chmod(0o644)
    time.sleep(0.3)  # the server's listen()
    rates = []
    for flags in ([], ["-R"]):  # the sandbox sends (its egress), then receives
        done = _nobody(world, [sys.executable, "-m", "stockade", "run", "--policy", str(policy),
                               "--", "/usr/bin/iperf3", "-c", "10.99.0.2", "-t", "3", "-O", "1",
                               "-J", *flags], nobody_env)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        rates.append(float(json.loads(done.stdout)["end"]["sum_received"]["bits_per_second"]))
    print("RATES", rates)
    assert abs(rates[0] - 20e6) / 20e6 <= 0.15, rates
    assert abs(rates[1] - 40e6) / 40e6 <= 0.15, rates
