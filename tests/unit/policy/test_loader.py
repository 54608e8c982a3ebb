"""The policy language: loading, errors with locations, extends, precedence."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from stockade.errors import PolicyError
from stockade.policy import model as m
from stockade.policy.loader import load_policy
from tests.conftest import EXAMPLES


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_every_shared_example_loads(example: Path) -> None:
    policy = load_policy(str(example))
    assert policy.name == example.stem
    assert policy.sources[-1] == str(example)
    assert policy.digest and len(policy.digest) == 64


@pytest.mark.parametrize("preset", ["default", "strict", "unconfined"])
def test_presets_load(preset: str) -> None:
    assert load_policy(preset).name == preset


def test_web_api_resolves_as_written() -> None:
    p = load_policy(str(next(e for e in EXAMPLES if e.name == "web-api.yaml")))
    assert p.capabilities.kept == frozenset({"CAP_NET_BIND_SERVICE"})
    assert "ptrace" in p.syscalls.deny and "mount" in p.syscalls.deny
    assert p.network.mode == "loopback" and p.network.bind == (8080,)
    assert p.resources.memory == 256 * 1024 * 1024 and p.resources.cpu == 0.5
    assert p.hostname == "web-api"
    assert p.lsm.apparmor == m.AppArmor("enforce")
    assert p.rlimits["nofile"] == 1024
    # the explicit deny of personality replaces the default preset's argument rules for it
    assert not any("personality" in r.syscalls for r in p.syscalls.rules)
    assert {e.path for e in p.filesystem.deny} == {"/proc/kcore", "/sys/firmware", "/etc/shadow",
                                                   "/proc/keys", "/proc/timer_list", "/proc/sched_debug"}


ERROR_CASES = [
    ("malformed", "stockade: 1\nname: x\n  bad: [\n", "malformed YAML", 3),
    ("unknown-key", "stockade: 1\nname: x\nsyscall: {}\n", "did you mean 'syscalls'", 3),
    ("unknown-nested-key", "stockade: 1\nname: x\nsyscalls:\n  alow: [read]\n", "did you mean 'allow'", 4),
    ("wrong-type", "stockade: 1\nname: x\nresources:\n  pids: lots\n", "resources.pids", 4),
    ("unknown-syscall", "stockade: 1\nname: x\nsyscalls:\n  allow: [read, mkdirr]\n", "did you mean 'mkdir'", 4),
    ("unknown-group", "stockade: 1\nname: x\nsyscalls:\n  deny: ['@mounts']\n", "did you mean '@mount'", 4),
    ("unknown-cap", "stockade: 1\nname: x\ncapabilities:\n  add: [NET_ADMN]\n", "did you mean 'CAP_NET_ADMIN'", 4),
    ("unknown-errno", "stockade: 1\nname: x\nsyscalls:\n  default: errno:EPRM\n", "did you mean 'EPERM'", 4),
    ("unknown-action", "stockade: 1\nname: x\nsyscalls:\n  default: deny\n", "unknown action", 4),
    ("unknown-arch", "stockade: 1\nname: x\nsyscalls:\n  arches: [x86_65]\n", "did you mean 'x86_64'", 4),
    ("bad-index", "stockade: 1\nname: x\nsyscalls:\n  rules:\n    - {syscalls: [read], action: allow, args: [{index: 6, op: eq, value: 1}]}\n", "index", 5),
    ("bad-constant", "stockade: 1\nname: x\nsyscalls:\n  rules:\n    - {syscalls: [clone], action: allow, args: [{index: 0, op: masked_eq, mask: CLONE_NEWUSR, value: 0}]}\n", "did you mean 'CLONE_NEWUSER'", 5),
    ("mask-missing", "stockade: 1\nname: x\nsyscalls:\n  rules:\n    - {syscalls: [clone], action: allow, args: [{index: 0, op: masked_eq, value: 0}]}\n", "needs a mask", 5),
    ("relative-path", "stockade: 1\nname: x\nfilesystem:\n  writable: [tmp]\n", "must be absolute", 4),
    ("bad-name", "stockade: 1\nname: Web API\n", "name", 2),
    ("version", "stockade: 2\nname: x\n", "stockade", 1),
    ("missing-name", "stockade: 1\n", "required key is missing", 1),
    ("duplicate-key", "stockade: 1\nname: x\nname: y\n", "duplicate key", 3),
    ("ambient-not-kept", "stockade: 1\nname: x\ncapabilities:\n  drop: [ALL]\n  ambient: [NET_RAW]\n", "ambient", 5),
    ("bad-selinux", "stockade: 1\nname: x\nlsm:\n  selinux: {type: web-api_t}\n", "SELinux type", 4),
    ("bad-size", "stockade: 1\nname: x\nresources:\n  memory: 12Qi\n", "invalid size", 4),
    ("not-a-mapping", "- a\n- b\n", "must be a mapping", 1),
    ("empty", "", "empty policy", 1),
]


@pytest.mark.parametrize("name,text,message,line", ERROR_CASES, ids=[c[0] for c in ERROR_CASES])
def test_bad_input_names_file_line_and_problem(tmp_path: Path, name: str, text: str, message: str, line: int) -> None:
    path = write(tmp_path, f"{name}.yaml", text)
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    err = info.value
    assert message in str(err)
    assert err.location.file == path
    assert err.location.line == line, str(err)
    assert err.exit_code == 2
    assert str(err).startswith(f"{path}:{line}:")


def test_missing_file_and_unknown_preset() -> None:
    with pytest.raises(PolicyError, match="no such file"):
        load_policy("/nonexistent/policy.yaml")
    with pytest.raises(PolicyError, match="did you mean 'strict'"):
        load_policy("strct")


def test_extends_cycle_is_an_error(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "stockade: 1\nname: a\nextends: [b.yaml]\n")
    write(tmp_path, "b.yaml", "stockade: 1\nname: b\nextends: [./a.yaml]\n")
    with pytest.raises(PolicyError, match="cycle in extends") as info:
        load_policy(str(tmp_path / "a.yaml"))
    assert "a.yaml -> " in str(info.value)


def test_extends_relative_paths_and_diamonds(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    write(tmp_path, "sub/base.yaml", "stockade: 1\nname: base\nextends: [strict]\nsyscalls: {deny: [ptrace]}\n")
    write(tmp_path, "mid.yaml", "stockade: 1\nname: mid\nextends: [sub/base.yaml, strict]\n")
    top = write(tmp_path, "top.yaml", "stockade: 1\nname: top\nextends: [mid.yaml, sub/base.yaml]\n")
    p = load_policy(top)
    assert [s.rsplit("/", 1)[-1] for s in p.sources] == ["<preset:strict>", "base.yaml", "mid.yaml", "top.yaml"]
    assert "ptrace" in p.syscalls.deny


def test_precedence_within_one_file(tmp_path: Path) -> None:
    path = write(tmp_path, "p.yaml", """\
        stockade: 1
        name: p
        syscalls:
          default: kill
          allow: [read, write, uname]
          deny: [write]
          rules:
            - {syscalls: [uname], action: "errno:EACCES"}
        """)
    from stockade.policy.semantics import decide

    p = load_policy(path)
    arch = p.syscalls.arches[0]
    assert decide(p, "read", arch).action == m.ALLOW  # allow beats default
    assert decide(p, "write", arch).action == m.DENY_EPERM  # deny beats allow
    assert decide(p, "uname", arch).action == m.Action(m.ActionKind.ERRNO, 13)  # rule beats allow
    assert decide(p, "getpid", arch).action == m.Action(m.ActionKind.KILL_PROCESS)  # default
    assert decide(p, None, arch).action == m.DENY_ENOSYS  # unknown: enosys by default


def test_precedence_across_extends(tmp_path: Path) -> None:
    write(tmp_path, "base.yaml", """\
        stockade: 1
        name: base
        syscalls:
          allow: [read, write, personality]
          deny: [ptrace]
          rules:
            - {syscalls: [personality], action: "errno:EACCES", args: [{index: 0, op: eq, value: 8}]}
        capabilities: {drop: [ALL], add: [CHOWN, NET_RAW]}
        filesystem: {writable: [/tmp]}
        resources: {memory: 64Mi, pids: 10}
        """)
    top = write(tmp_path, "top.yaml", """\
        stockade: 1
        name: top
        extends: [base.yaml]
        syscalls:
          allow: [ptrace]
          deny: [write, personality]
        capabilities: {drop: [NET_RAW], add: [KILL]}
        filesystem: {writable: [/var/tmp]}
        resources: {pids: 20}
        """)
    p = load_policy(top)
    assert "ptrace" in p.syscalls.allow and "ptrace" not in p.syscalls.deny  # later allow wins
    assert "write" in p.syscalls.deny and "write" not in p.syscalls.allow  # later deny wins
    assert not p.syscalls.rules  # an explicit later deny replaces earlier argument rules
    assert p.capabilities.kept == {"CAP_CHOWN", "CAP_KILL"}
    assert [e.path for e in p.filesystem.writable] == ["/tmp", "/var/tmp"]  # lists union
    assert p.resources.memory == 64 * 2**20 and p.resources.pids == 20  # scalars override


def test_group_reallow_keeps_parent_argument_rules(tmp_path: Path) -> None:
    """Re-listing a group (batch-job does) must not silently drop strict's clone rules."""
    from stockade.policy.semantics import decide
    from stockade.policy.vocab.constants import CONSTANTS

    p = load_policy(str(next(e for e in EXAMPLES if e.name == "batch-job.yaml")))
    arch = p.syscalls.arches[0]
    assert decide(p, "clone", arch, (CONSTANTS["CLONE_NEWUSER"], 0, 0, 0, 0, 0)).action == m.DENY_EPERM
    assert decide(p, "clone", arch, (0x11, 0, 0, 0, 0, 0)).action == m.ALLOW


def test_capability_semantics(tmp_path: Path) -> None:
    from stockade.policy.vocab.capabilities import DOCKER_DEFAULT_CAPS

    none = load_policy(write(tmp_path, "a.yaml", "stockade: 1\nname: a\n"))
    assert none.capabilities.kept == frozenset()
    docker_minus = load_policy(write(tmp_path, "b.yaml", "stockade: 1\nname: b\ncapabilities: {drop: [net_raw]}\n"))
    assert docker_minus.capabilities.kept == frozenset(DOCKER_DEFAULT_CAPS) - {"CAP_NET_RAW"}
    case = load_policy(write(tmp_path, "c.yaml", "stockade: 1\nname: c\ncapabilities: {drop: [all], add: [Cap_Chown], ambient: [chown]}\n"))
    assert case.capabilities.kept == {"CAP_CHOWN"} and case.capabilities.ambient == ("CAP_CHOWN",)


def test_named_constants_and_when(tmp_path: Path) -> None:
    p = load_policy(write(tmp_path, "w.yaml", """\
        stockade: 1
        name: w
        syscalls:
          arches: [x86_64, aarch64]
          rules:
            - syscalls: [clone]
              action: allow
              args: [{index: 0, op: masked_eq, mask: "CLONE_NEWUSER|CLONE_NEWNS", value: 0}]
              when: {arch: [amd64], caps: [sys_admin], min_kernel: "5.8"}
        """))
    rule = p.syscalls.rules[0]
    assert rule.args[0].mask == 0x10020000
    assert rule.when == m.Condition(arches=frozenset({"x86_64"}), caps=frozenset({"CAP_SYS_ADMIN"}), min_kernel=(5, 8))
    assert p.syscalls.arches == ("x86_64", "aarch64")


def test_show_resolved_round_trips(tmp_path: Path) -> None:
    """The merged document loads again and means the same (same digest)."""
    from stockade.policy.render import dump_yaml, to_document

    for example in EXAMPLES:
        p = load_policy(str(example))
        again = load_policy(write(tmp_path, example.name, dump_yaml(to_document(p))))
        assert to_document(again) == to_document(p)
