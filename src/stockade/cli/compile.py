"""stockade compile FILE --target T [-o DIR | -o -] [--strict]"""

from __future__ import annotations

import argparse
import os
import sys

from stockade.cli.options import kernel_version
from stockade.errors import StockadeError


def configure(parser: argparse.ArgumentParser) -> None:
    from stockade.profiles.registry import TARGETS

    parser.add_argument("file", metavar="FILE", help="policy file or preset name")
    parser.add_argument("--target", "-t", required=True, metavar="T",
                        help="one of: " + ", ".join([*TARGETS, "all"]))
    parser.add_argument("-o", "--output", metavar="DIR", help="output directory, or - for stdout")
    parser.add_argument("--strict", action="store_true",
                        help="fail (exit 1, nothing written) on any warning: something a chosen "
                        "target was asked to carry and cannot (a backend warning, or a rule of a "
                        "kind the target enforces left unenforced); kinds of rule a target never "
                        "handles, e.g. filesystem rules for seccomp-bpf, are out of its scope "
                        "(`stockade explain FILE` lists every rule and its enforcers)")
    parser.add_argument("--kernel", metavar="X.Y", help="compile for this kernel version (default: running)")
    parser.add_argument("--arch", metavar="ARCH", help="compile for this native arch (default: this machine)")


def _host(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from dataclasses import replace

    from stockade.linux.hostfacts import HostFacts

    host = HostFacts.detect()
    if args.kernel:
        host = replace(host, kernel=kernel_version(args.kernel))
    if args.arch:
        from stockade.linux.syscall_table import canonical_arch

        arch = canonical_arch(args.arch)
        if arch is None:
            raise StockadeError(f"--arch: unknown architecture {args.arch!r}")
        host = replace(host, arch=arch)
    return host


def main(args: argparse.Namespace) -> int:
    from stockade.policy.loader import load_policy
    from stockade.profiles.base import write_all
    from stockade.profiles.registry import available_targets, target

    policy = load_policy(args.file)
    host = _host(args)
    names = available_targets() if args.target == "all" else [args.target]
    results = [target(name).compile(policy, host) for name in names]
    warnings = [_labelled(r.target, w) for r in results for w in r.warnings]
    if args.strict:
        from stockade.profiles.enforcement import unenforced_in_scope

        warnings += [f"not enforced by any chosen target: {rule}"
                     for rule in unenforced_in_scope(policy, results)]
    for w in warnings:
        print(f"stockade compile: warning: {w}", file=sys.stderr)
    if args.strict and warnings:
        print("stockade compile: --strict: nothing written", file=sys.stderr)
        return 1
    if args.output == "-" or args.output is None:
        files = [f for r in results for f in r.files]
        if len(files) != 1:
            raise StockadeError(f"target {args.target!r} has {len(files)} files; give -o DIR")
        if args.output is None and files[0].data is not None and sys.stdout.isatty():
            raise StockadeError("refusing to write binary BPF to a terminal; use -o DIR or -o -")
        sys.stdout.buffer.write(files[0].content())
        sys.stdout.flush()
        return 0
    out = args.output
    subdirs = [out] if len(results) == 1 else [os.path.join(out, r.target) for r in results]
    for subdir in subdirs:
        _check_output_dir(out, subdir)
    try:  # every target's files or none (`-t all` included)
        written_per_target = write_all(list(zip(results, subdirs, strict=True)))
    except OSError as exc:
        where = exc.filename or out
        raise StockadeError(f"-o {out}: cannot write {where}: {exc.strerror}") from None
    for r, written in zip(results, written_per_target, strict=True):
        for path, art in zip(written, r.files, strict=True):
            desc = f"  ({art.description})" if art.description else ""
            print(f"{path}{desc}")
        for note in r.notes:
            print(f"  {note}")
    return 0


def _labelled(target: str, warning: str) -> str:
    """The warning with its target in front, once (some backends already name themselves)."""
    return warning if warning.startswith(f"{target}: ") else f"{target}: {warning}"


def _check_output_dir(out: str, path: str) -> None:
    """Refuse an output directory that cannot be one before anything is written: the
    path, or its nearest existing ancestor, must be a directory."""
    existing = os.path.abspath(path)
    while not os.path.lexists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise StockadeError(f"-o {out}: {existing} is not a directory; expected a directory "
                            "(created if missing) or - for stdout")
