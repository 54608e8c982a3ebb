"""The executor's real-kernel tests share the runner's fixtures (leak snapshots, the
payload's output directory, a private cache)."""

from tests.integration.runner.conftest import _cache, leak_check, outdir  # noqa: F401
