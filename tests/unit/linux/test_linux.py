"""stockade.linux: one syscall table (libseccomp's), one constants module, one host-facts
detector. Each test states the single-source property it guards."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from stockade.linux import consts, host, libseccomp, syscalls
from stockade.linux.hostfacts import HostFacts
from stockade.linux.syscall_table import native_arch, syscall_table

SRC = Path(__file__).resolve().parents[3] / "src" / "stockade"


def test_wrapper_numbers_are_the_tables_numbers() -> None:
    """The wrappers' numbers and the per-arch table both come from libseccomp: for every
    name the table knows they agree, so no hand-kept list can drift from it."""
    table = syscall_table()
    arch = native_arch()
    known = {n: nr for n, nr in syscalls.numbers().items() if table.number(arch, n) is not None}
    assert len(known) >= len(syscalls.numbers()) - 1  # lsm_list_modules may be newer than libseccomp
    for name, nr in known.items():
        assert table.number(arch, name) == nr, name


def test_syscall_newer_than_libseccomp_has_the_unified_number() -> None:
    """lsm_list_modules (6.8) is unknown to Debian 12's libseccomp 2.5.4: the fallback is
    the asm-generic unified number, the same on every supported arch."""
    assert syscalls.numbers()["lsm_list_modules"] == 461


def test_unknown_syscall_name_fails_closed() -> None:
    with pytest.raises(KeyError):
        libseccomp.native_number("no_such_syscall_stockade")


def _module_level_constants(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else (
            [node.target] if isinstance(node, ast.AnnAssign) else [])
        for t in targets:
            if isinstance(t, ast.Name) and t.id.isupper():
                names.add(t.id)
    return names


def test_kernel_constants_are_defined_once() -> None:
    """No module outside linux/ defines a kernel constant linux.consts defines (clone
    flags, MS_*, PR_*, ...): the second copy is how a wrong value hides."""
    ours = _module_level_constants(SRC / "linux" / "consts.py")
    twice: list[str] = []
    for path in SRC.rglob("*.py"):
        if "linux" in path.relative_to(SRC).parts[:1]:
            continue
        twice += [f"{path.relative_to(SRC)}: {n}" for n in _module_level_constants(path) & ours]
    assert not twice, twice


def test_ctypes_libraries_are_loaded_only_by_linux() -> None:
    """One ctypes layer: libc and libseccomp are opened by linux/ alone."""
    outside = [str(p.relative_to(SRC)) for p in SRC.rglob("*.py")
               if p.relative_to(SRC).parts[0] != "linux"
               and ("CDLL(" in p.read_text() or "PyDLL(" in p.read_text())]
    assert not outside, outside


def test_detect_reads_this_host() -> None:
    facts = HostFacts.detect()
    assert facts.kernel_release == os.uname().release
    assert facts.kernel == host.kernel() and facts.kernel > (0, 0)
    with open("/proc/sys/kernel/cap_last_cap") as fh:
        assert facts.cap_last_cap == int(fh.read())
    assert facts.landlock_abi == syscalls.landlock_abi()
    assert facts.arch == native_arch()
    assert facts.apparmor_enabled == ("apparmor" in facts.lsms)
    assert facts.runtimes == {} and not facts.from_inside  # only the audit asks for those


def test_detect_never_runs_runtimes_from_inside(monkeypatch: pytest.MonkeyPatch) -> None:
    """Inside a container the host's runc is neither visible nor relevant: not asked."""
    from stockade.linux import hostfacts

    def fail(name: str) -> None:
        raise AssertionError(f"asked {name} from inside")

    monkeypatch.setattr(hostfacts, "runtime_info", fail)
    assert HostFacts.detect(runtimes=True, from_inside=True).runtimes == {}


def test_lsms_fall_back_to_securityfs_then_module_parameters(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A kernel before 6.8 (or a seccomp filter) refuses lsm_list_modules: securityfs
    says; without securityfs (a container) the module parameters do."""
    files: dict[str, str] = {"/sys/kernel/security/lsm": "lockdown,capability,apparmor"}
    monkeypatch.setattr(syscalls, "lsm_active_ids", lambda: None)
    monkeypatch.setattr(host, "_read", lambda path: files.get(path, ""))
    assert host.active_lsms() == ("lockdown", "capability", "apparmor")
    files = {"/sys/module/apparmor/parameters/enabled": "Y"}
    assert host.active_lsms() == ("apparmor",)


def test_lsm_ids_are_named_in_stacking_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(syscalls, "lsm_active_ids",
                        lambda: (108, 100, consts.LSM_ID_LANDLOCK, consts.LSM_ID_APPARMOR, 199))
    assert host.active_lsms() == ("lockdown", "capability", "landlock", "apparmor", "lsm199")


@pytest.mark.parametrize(("fs_types", "mode"), [
    (("ext4", "cgroup", "cgroup2"), "hybrid"), (("ext4", "cgroup"), "v1"),
    (("ext4", "cgroup2"), "v2"), (("ext4",), "none"),
])
def test_cgroup_mode(fs_types: tuple[str, ...], mode: str) -> None:
    mountinfo = "".join(f"{i} 1 0:{i} / /m{i} rw - {t} {t} rw\n" for i, t in enumerate(fs_types))
    assert host.cgroup_mode(mountinfo) == mode


def test_unreadable_cap_last_cap_falls_back_to_the_last_known(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from stockade.policy.vocab.capabilities import CAPABILITY_NAMES

    monkeypatch.setattr(host, "_read", lambda path: "")
    assert host.cap_last_cap() == len(CAPABILITY_NAMES) - 1


def test_goarch_and_aliases_are_one_mapping_both_ways() -> None:
    """GOARCH (libseccomp name -> Go's word) and ARCH_ALIASES (any word -> libseccomp
    name) must agree: an image pulled for this host and the seccomp arch it runs are one."""
    from stockade.linux.syscall_table import ARCH_TOKENS, GOARCH, canonical_arch

    for arch, goarch in GOARCH.items():
        assert arch in ARCH_TOKENS
        assert canonical_arch(goarch) == arch, goarch


def test_image_platform_is_the_native_arch_in_go_words(monkeypatch: pytest.MonkeyPatch) -> None:
    from stockade.image import archive

    for machine, goarch in (("x86_64", "amd64"), ("aarch64", "arm64"), ("armv7l", "arm"),
                            ("riscv64", "riscv64"), ("loongarch64", "loongarch64")):
        monkeypatch.setattr(os, "uname", lambda m=machine: os.uname_result(
            ("Linux", "h", "6.1", "#1", m)))
        assert archive._host_platform() == ("linux", goarch), machine


def test_importing_the_wrappers_loads_no_libseccomp() -> None:
    """A path that makes no raw syscall (the CLI's parse, a cached plan) does not load
    libseccomp; the first wrapper's number resolves the whole table at once (one load,
    one pass over WRAPPED)."""
    code = ("import sys; from stockade.linux import syscalls as L;"
            "print('stockade.linux.libseccomp' in sys.modules, len(L._numbers));"
            "n = L.numbers()['mount'];"
            "print('stockade.linux.libseccomp' in sys.modules, len(L._numbers) == len(L.WRAPPED))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split("\n")[:2] == ["False 0", "True True"]


def test_host_facts_without_syscalls_load_no_ctypes() -> None:
    """The OCI create path reads cap_last_cap and the kernel release only: linux.host
    loads the ctypes layer just for the facts that need a raw syscall."""
    code = ("import sys; from stockade.linux import host; host.cap_last_cap(); host.kernel();"
            "print('ctypes' in sys.modules, 'stockade.linux.syscalls' in sys.modules);"
            "host.landlock_abi(); print('stockade.linux.syscalls' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split("\n")[:2] == ["False False", "True"]
