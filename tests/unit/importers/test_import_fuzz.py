"""Fuzzing `stockade import` (issue 14.6): real Docker/podman seccomp profiles and OCI
config.json files (the seed corpus), mutated (type confusion, missing keys, wrong values,
moved subtrees), only ever import (and the output loads) or fail with one line, exit 2,
no output file. Any other exception escapes `main` and fails the test with its input."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from stockade.cli import main
from stockade.policy.loader import load_policy
from tests.conftest import MOBY_PROFILE
from tests.unit._mutations import mutated

SEEDS = Path(__file__).resolve().parents[2] / "data" / "seeds"
PROFILES = [json.loads(p.read_text()) for p in (MOBY_PROFILE, SEEDS / "podman-seccomp.json")]
CONFIGS = [json.loads((SEEDS / name).read_text())
           for name in ("runc-spec-config.json", "runc-spec-rootless-config.json")]
# the rootless spec with podman's profile, resources and rlimits: every field the import reads
_FULL = json.loads(json.dumps(CONFIGS[1]))
_FULL["linux"]["seccomp"] = PROFILES[1]
_FULL["linux"]["resources"] = {"memory": {"limit": 1 << 28}, "pids": {"limit": 100},
                               "cpu": {"quota": 50000, "period": 100000}}
_FULL["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}]
_FULL["mounts"].append({"destination": "/data", "type": "bind", "source": "/srv", "options": ["rbind", "ro"]})
CONFIGS.append(_FULL)

FUZZ = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def _imports_or_refuses_cleanly(tmp_path: Path, kind: str, data: Any) -> str:
    """'imported' or 'refused: PROBLEM'; fails on anything else."""
    src, out = tmp_path / "in.json", tmp_path / "out.yaml"
    src.write_text(json.dumps(data))
    out.unlink(missing_ok=True)
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
        rc = main(["import", kind, str(src), "-o", str(out)])
    last = (stderr.getvalue().splitlines() or [""])[-1]
    assert rc in (0, 2), stderr.getvalue()
    assert sorted(p.name for p in tmp_path.iterdir()) == (["in.json", "out.yaml"] if rc == 0 else ["in.json"])
    if rc == 0:
        load_policy(str(out))
        return "imported"
    assert last.startswith(f"stockade: {src}: ") or last.startswith(f"stockade: {out}"), last
    return "refused: " + last.split(": ", 3)[-1].split(";")[0][:60]


def test_seed_corpus_imports(tmp_path: Path) -> None:
    for data in PROFILES:
        assert _imports_or_refuses_cleanly(tmp_path, "docker-seccomp", data) == "imported"
    for data in CONFIGS:
        assert _imports_or_refuses_cleanly(tmp_path, "oci-config", data) == "imported"


@FUZZ
@given(st.sampled_from(PROFILES).flatmap(mutated))
def test_mutated_seccomp_profiles(tmp_path: Path, data: Any) -> None:
    event(_imports_or_refuses_cleanly(tmp_path, "docker-seccomp", data))


@FUZZ
@given(st.sampled_from(CONFIGS).flatmap(mutated))
def test_mutated_oci_configs(tmp_path: Path, data: Any) -> None:
    event(_imports_or_refuses_cleanly(tmp_path, "oci-config", data))
