"""Fixtures for the engine tests: the busybox rootfs of the OCI tests and stockade's
runtime wrapper (`stockade oci wrapper`, the compiled front end when it is built)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.integration.oci.conftest import (  # noqa: F401 - fixtures
    STOCKADE,
    bundles,
    oci_root,
    runc_spec,
    shared_rootfs,
)


@pytest.fixture(scope="session")
def stockade_wrapper(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The runtime script engines are given (docs/OCI.md, Engines)."""
    path = tmp_path_factory.mktemp("wrapper") / "stockade-runtime"
    subprocess.run([*STOCKADE, "wrapper", str(path)], check=True)
    return path
