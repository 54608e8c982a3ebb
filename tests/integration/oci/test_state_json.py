"""The container state as one JSON file (`<root>/<id>/state.json`), written by Python
(oci/state.py) and by the compiled front end's create (oci/fastexec.c, json-c), read by
both: the same keys and values either way, and `state` prints the same from either."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.integration.oci.conftest import Bundles, leftovers, oci
from tests.integration.oci.test_fastpath import REQUIRE, _bundle, _stored, fe

LOOP = ["sh", "-c", "while :; do sleep 0.05; done"]
# keys whose values differ between any two containers
PER_CONTAINER = {"id", "pid", "creator", "created", "starttime", "cgroup_dirs",
                 "cgroup_pending"}


def _recorded(root: Path, cid: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((root / "stockade" / cid / "state.json").read_bytes())
    return data


def test_both_writers_record_the_same_state(frontend_bin: str, bundles: Bundles,
                                            oci_root: Path) -> None:
    bundle = _bundle(bundles, LOOP, annotations={"a": 'quote " back \\ nl \n tab \t',
                                                 "org.example/b": "/x"})
    _stored(frontend_bin, oci_root, bundle)
    r = fe(frontend_bin, oci_root, "create", "--bundle", bundle, "byc", env=REQUIRE,
           files=True)
    assert r.returncode == 0, r.stderr  # the front end's own create
    assert oci(oci_root, "create", "--bundle", bundle, "byp").returncode == 0  # Python's
    by_c, by_py = _recorded(oci_root, "byc"), _recorded(oci_root, "byp")
    assert list(by_c) == list(by_py)  # the same keys, in the same order
    assert {k: v for k, v in by_c.items() if k not in PER_CONTAINER} == \
        {k: v for k, v in by_py.items() if k not in PER_CONTAINER}
    assert [d.replace("byc", "byp") for d in by_c["cgroup_dirs"]] == by_py["cgroup_dirs"]
    assert by_c["creating"] is False and by_c["pid"] > 0 and by_c["starttime"] > 0
    for cid in ("byc", "byp"):  # `state` answered by the front end and by Python: the same
        mine = fe(frontend_bin, oci_root, "state", cid)
        assert mine.returncode == 0 and mine.stdout == oci(oci_root, "state", cid).stdout
        assert json.loads(mine.stdout)["annotations"]["a"] == 'quote " back \\ nl \n tab \t'
        assert not (oci_root / "stockade" / cid / "fast").exists()
        assert sorted(p.name for p in (oci_root / "stockade" / cid).iterdir()) == \
            ["exec.fifo", "state.json"]  # nothing half-written left beside it
        assert fe(frontend_bin, oci_root, "delete", "--force", cid).returncode == 0
        assert not leftovers(cid)


def test_a_state_it_cannot_print_exactly_goes_to_python(frontend_bin: str, bundles: Bundles,
                                                        oci_root: Path) -> None:
    bundle = _bundle(bundles, LOOP, annotations={"name": "caf\u00e9"})
    assert oci(oci_root, "create", "--bundle", bundle, "u1").returncode == 0
    mine = fe(frontend_bin, oci_root, "state", "u1")
    assert mine.returncode == 0 and mine.stdout == oci(oci_root, "state", "u1").stdout
    assert '"caf\\u00e9"' in mine.stdout  # Python's json.dumps (ensure_ascii) printed it
    # a state this build does not know how to read is Python's too (it says why)
    path = oci_root / "stockade" / "u1" / "state.json"
    data = json.loads(path.read_bytes())
    path.write_text(json.dumps({**data, "pid": "not a number"}))
    r = fe(frontend_bin, oci_root, "kill", "u1", "KILL")
    assert r.returncode == 2 and r.stderr == (
        "stockade: container u1: unreadable state (pid: an integer expected, found "
        "'not a number')\n")  # Python refuses: nothing was signalled
    assert oci(oci_root, "state", "u1").returncode == 2
    path.write_text(json.dumps(data))
    assert fe(frontend_bin, oci_root, "delete", "--force", "u1").returncode == 0
    assert not leftovers("u1")
