"""resolve_process: the image proposes, the command line overrides, the policy decides."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from stockade.errors import StockadeError
from stockade.image.config import ImageConfig
from stockade.image.process import DEFAULT_PATH, read_in_root, resolve_process


@dataclass(frozen=True)
class U:
    uid: int = 0
    gid: int = 0


ROOT_POLICY, USER_POLICY = U(0, 0), U(1000, 1000)


@pytest.fixture()
def rootfs(tmp_path: Path) -> Path:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n"
    )
    (tmp_path / "etc/group").write_text("root:x:0:\napp:x:1000:\nstaff:x:50:\n")
    return tmp_path


def test_entrypoint_and_cmd() -> None:
    cfg = ImageConfig(entrypoint=("/bin/app",), cmd=("--default",))
    assert resolve_process(cfg, [], ROOT_POLICY).argv == ["/bin/app", "--default"]
    assert resolve_process(cfg, ["--mine"], ROOT_POLICY).argv == ["/bin/app", "--mine"]
    assert resolve_process(cfg, ["sh"], ROOT_POLICY, cli_entrypoint=[]).argv == ["sh"]
    assert resolve_process(ImageConfig(cmd=("sh",)), [], ROOT_POLICY).argv == ["sh"]
    with pytest.raises(StockadeError, match="no Entrypoint or Cmd"):
        resolve_process(ImageConfig(), [], ROOT_POLICY)


def test_env_and_cwd() -> None:
    cfg = ImageConfig(cmd=("x",), env=("A=1", "PATH=/opt/bin"), working_dir="/srv/app")
    r = resolve_process(cfg, [], ROOT_POLICY, cli_env=["A=2"])
    assert r.env == ["PATH=/opt/bin", "HOME=/", "A=2"]
    assert r.cwd == "/srv/app" and r.refusals == []
    assert f"PATH={DEFAULT_PATH}" in resolve_process(ImageConfig(cmd=("x",)), [], ROOT_POLICY).env
    bad = resolve_process(ImageConfig(cmd=("x",), working_dir="../../etc"), [], ROOT_POLICY)
    assert bad.cwd == "/" and "WorkingDir" in bad.refusals[0]


def test_image_user_honoured_when_it_lowers_privilege(rootfs: Path) -> None:
    r = resolve_process(ImageConfig(cmd=("x",), user="app"), [], ROOT_POLICY, rootfs=rootfs)
    assert (r.uid, r.gid, r.refusals) == (1000, 1000, [])
    assert "HOME=/home/app" in r.env
    r = resolve_process(ImageConfig(cmd=("x",), user="nobody:staff"), [], ROOT_POLICY, rootfs=rootfs)
    assert (r.uid, r.gid) == (65534, 50)
    r = resolve_process(ImageConfig(cmd=("x",), user="4242:4243"), [], ROOT_POLICY)
    assert (r.uid, r.gid) == (4242, 4243)


def test_policy_wins_over_image_root(rootfs: Path) -> None:
    r = resolve_process(ImageConfig(cmd=("x",), user="root"), [], USER_POLICY, rootfs=rootfs)
    assert (r.uid, r.gid) == (1000, 1000)
    assert r.refusals == ["image User 'root' asks for root; the policy runs as uid 1000, gid 1000"]
    r = resolve_process(ImageConfig(cmd=("x",), user="0:0"), [], USER_POLICY)
    assert (r.uid, r.gid) == (1000, 1000) and r.refusals
    # no User in the image means root in docker: the policy's user, without a complaint
    r = resolve_process(ImageConfig(cmd=("x",)), [], USER_POLICY)
    assert (r.uid, r.gid, r.refusals) == (1000, 1000, [])


def test_group_root_refused(rootfs: Path) -> None:
    r = resolve_process(ImageConfig(cmd=("x",), user="app:root"), [], U(0, 1000), rootfs=rootfs)
    assert r.gid == 1000 and "gid 0" in r.refusals[0]


def test_unknown_user_falls_back_to_policy(rootfs: Path) -> None:
    r = resolve_process(ImageConfig(cmd=("x",), user="ghost"), [], ROOT_POLICY, rootfs=rootfs)
    assert (r.uid, r.gid) == (0, 0) and "no such user" in r.refusals[0]


def test_passwd_symlink_not_followed(tmp_path: Path) -> None:
    """/etc/passwd -> /etc/shadow of the host must not be read."""
    (tmp_path / "etc").mkdir()
    secret = tmp_path.parent / f"{tmp_path.name}-secret"
    secret.write_text("app:x:0:0::/:/bin/sh\n")
    os.symlink(secret, tmp_path / "etc/passwd")
    assert read_in_root(tmp_path, "etc/passwd") is None
    os.symlink("/", tmp_path / "hostroot")
    assert read_in_root(tmp_path, "hostroot/etc/passwd") is None
    r = resolve_process(ImageConfig(cmd=("x",), user="app"), [], ROOT_POLICY, rootfs=tmp_path)
    assert "no such user" in r.refusals[0]


def test_config_validation() -> None:
    with pytest.raises(StockadeError, match="Cmd"):
        ImageConfig.from_image_json({"config": {"Cmd": "not a list"}})
    with pytest.raises(StockadeError, match="Env"):
        ImageConfig.from_image_json({"config": {"Env": ["NOEQUALS"]}})
    cfg = ImageConfig.from_image_json({"config": None, "architecture": "amd64"})
    assert cfg.cmd == () and cfg.architecture == "amd64"


def test_image_privileges_reported() -> None:
    r = resolve_process(ImageConfig(cmd=("x",)), [], ROOT_POLICY,
                        image_privileges=["/bin/su (setuid)", "/bin/ping (file capabilities)"])
    assert r.refusals == ["image file /bin/su (setuid): ignored, no_new_privileges is set",
                          "image file /bin/ping (file capabilities): ignored, no_new_privileges is set"]
