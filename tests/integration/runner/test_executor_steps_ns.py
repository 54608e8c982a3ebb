"""The executor's namespace-wide steps (hostname, per-namespace sysctls, loopback up;
src/stockade/executor/steps/netns.c) in fresh uts/ipc/net namespaces, checked by a third
party in the same namespaces: the state asked for inside, the namespaces step's report and
exit code on a bad key, the host untouched."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from stockade.runner.codes import EXIT_CODES
from tests.unit.executor_steps.build import compile_driver

pytestmark = pytest.mark.root

SYSCTLS = (("kernel.shmmax", "123456789"), ("net.ipv4.ip_unprivileged_port_start", "80"))

# What the namespaces hold afterwards, read by a third party in the same namespaces.
READER = """
import fcntl, socket, struct, sys
print(socket.gethostname())
for key in sys.argv[1:]:
    print(key, open("/proc/sys/" + key.replace(".", "/")).read().strip())
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
flags = struct.unpack_from("H", fcntl.ioctl(s, 0x8913, struct.pack("16sH22x", b"lo", 0)), 16)[0]
print("lo up" if flags & 1 else "lo down")
"""


@pytest.fixture(scope="module")
def driver(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("unshare") is None:
        pytest.skip("unshare (util-linux) is not installed")
    return compile_driver("netns_driver", tmp_path_factory.mktemp("executor_steps_ns"))


def _in_new_namespaces(setter: list[str], *args: str) -> subprocess.CompletedProcess[str]:
    keys = " ".join(k for k, _ in SYSCTLS)
    script = ('"$@" || exit $?; exec ' + sys.executable + " -c '" + READER + "' " + keys)
    return subprocess.run(["unshare", "--uts", "--ipc", "--net", "sh", "-c", script, "sh",
                           *setter, *args], capture_output=True, text=True, check=False,
                          timeout=60)


def _host_state() -> tuple[str, ...]:
    return (socket.gethostname(),
            *(Path("/proc/sys/" + k.replace(".", "/")).read_text() for k, _ in SYSCTLS))


def test_hostname_sysctls_loopback(driver: Path) -> None:
    before = _host_state()
    done = _in_new_namespaces([str(driver)], "stockade-box", "1",
                              *(x for kv in SYSCTLS for x in kv))
    assert done.returncode == 0, done.stderr
    expected = "stockade-box\n" + "".join(f"{k} {v}\n" for k, v in SYSCTLS) + "lo up\n"
    assert done.stdout == expected
    assert _host_state() == before


def test_without_hostname_or_loopback_nothing_is_set(driver: Path) -> None:
    """"-": the new uts namespace keeps the host's name (a copy); lo stays down."""
    done = _in_new_namespaces([str(driver)], "-", "0")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert (lines[0], lines[-1]) == (socket.gethostname(), "lo down")


def test_unknown_sysctl_fails_the_namespaces_step(driver: Path) -> None:
    before = _host_state()
    done = _in_new_namespaces([str(driver)], "stockade-box", "1",
                              "kernel.stockade_no_such_key", "1")
    assert done.returncode == EXIT_CODES["namespaces"]
    assert done.stderr == ("namespaces\tsysctl kernel.stockade_no_such_key: "
                           "/proc/sys/kernel/stockade_no_such_key: No such file or directory\n")
    assert done.stdout == ""  # the step's failure ends the set-up: the reader never runs
    assert _host_state() == before
