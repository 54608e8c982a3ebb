"""Rows proved by opening paths: one probe per path, and the outcomes of the ones that exist."""

from __future__ import annotations

import errno
from collections.abc import Mapping
from functools import partial

from stockade.audit import probes_lib
from stockade.audit.probe import Outcome, Probe
from stockade.audit.registry import ProbePlan, Proofs
from stockade.audit.view import View


def open_probes(paths: tuple[str, ...], *, write: bool) -> ProbePlan:
    """Open each path (O_WRONLY or O_RDONLY) and close it, never reading or writing."""
    def plan(view: View) -> Mapping[str, Probe]:
        fn = probes_lib.open_wronly if write else probes_lib.open_rdonly
        return {p: Probe(partial(fn, p)) for p in paths}
    return plan


def existing(proofs: Proofs, paths: tuple[str, ...]) -> list[tuple[str, Outcome]] | None:
    """(path, outcome) for each path the kernel has (its open did not fail with ENOENT);
    None when a probe did not run because the probes failed: the row is an error."""
    found = []
    for p in paths:
        o = proofs.get(p)
        if o is None:
            if proofs.error:
                return None
            continue
        if o.errno != errno.ENOENT:
            found.append((p, o))
    return found
