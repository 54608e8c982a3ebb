"""stockade learn [--policy BASE] [--rootfs DIR] [--append] -o OUT.yaml -- CMD [ARG...]

Exit status: 0 the workload succeeded and OUT.yaml was written; 1 it failed, was killed
or was not found, and OUT.yaml was still written from what ran (with a warning); 2 bad
input or nothing could be recorded (OUT.yaml untouched).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from typing import Any

from stockade.errors import StockadeError

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--policy", metavar="BASE",
                        help="record under this policy and extend it (default: the recording "
                             "runs under the 'default' preset and the result stands alone)")
    parser.add_argument("--rootfs", metavar="DIR", help="directory to use as /")
    parser.add_argument("--image", metavar="REF", help="a stored image (stockade image load) as /; its "
                        "Entrypoint/Cmd/Env/WorkingDir/User apply unless given here")
    parser.add_argument("--store", metavar="DIR", help="image store for --image")
    parser.add_argument("--bind", action="append", default=[], metavar="SRC:DST[:ro]",
                        help="bind SRC (host) on DST (inside) for the recording run")
    parser.add_argument("--env", "-e", action="append", default=[], metavar="KEY[=VALUE]",
                        help="environment for the workload (default: PATH only)")
    parser.add_argument("--cwd", default="/", help="working directory inside")
    parser.add_argument("--append", action="store_true",
                        help="merge into OUT.yaml (every run's needs are kept)")
    parser.epilog = ("exit status: 0 written, the workload succeeded; 1 written, but the "
                     "workload failed, was killed or was not found (see the warning); 2 bad "
                     "input or the sandbox failed, nothing written")
    parser.add_argument("--default", dest="default_action", default="kill", metavar="ACTION",
                        help="action for syscalls the workload never made: kill, "
                        "kill-thread, trap, errno, errno:NAME, enosys or log (default: kill)")
    parser.add_argument("--name", help="policy name (default: from OUT.yaml)")
    parser.add_argument("-o", "--output", required=True, metavar="OUT.yaml",
                        help="the policy file to write (loaded back before it is renamed into place)")
    parser.add_argument("cmd", nargs=argparse.REMAINDER, metavar="-- CMD [ARG...]",
                        help="the workload to record")


def _name(args: argparse.Namespace) -> str:
    if args.name:
        return str(args.name)
    stem = os.path.splitext(os.path.basename(args.output))[0].lower()
    stem = re.sub(r"[^a-z0-9_-]", "-", stem).strip("-_") or "learned"
    return stem if stem[0].isalpha() else "p-" + stem


def _with_image(args: argparse.Namespace, argv: list[str]) -> int:
    """Learn inside an image: its layers as the rootfs, its process settings unless the
    command line gives them (the same rules as `stockade run --image`)."""
    from pathlib import Path

    from stockade.image.run import image_for_run
    from stockade.policy.loader import load_policy

    base = load_policy(args.policy) if args.policy else load_policy("default")
    cli_env = [e if "=" in e else f"{e}={os.environ.get(e, '')}" for e in args.env]
    with image_for_run(args.image, argv, uid=base.user.uid, gid=base.user.gid,
                       read_only=base.filesystem.root == "read-only",
                       no_new_privileges=base.no_new_privileges, cli_env=cli_env,
                       store_root=Path(args.store) if args.store else None) as img:
        for line in img.lines:
            if line.startswith("refused:"):
                print(f"stockade learn: {line}", file=sys.stderr)
        inner = argparse.Namespace(**{**vars(args), "image": None, "rootfs": img.rootfs_path,
                                      "as_user": (img.process.uid, img.process.gid),
                                      "cmd": list(img.process.argv),
                                      "env": list(img.process.env) or args.env,
                                      "cwd": args.cwd if args.cwd != "/" else img.process.cwd})
        return main(inner)


def _env(items: list[str]) -> dict[str, str]:
    env = {"PATH": DEFAULT_PATH}
    for item in items:
        key, eq, value = item.partition("=")
        env[key] = value if eq else os.environ.get(key, "")
    return env


def main(args: argparse.Namespace) -> int:
    import yaml

    from stockade.learn.document import build, merge, refused_by, suggested_resources
    from stockade.learn.infer import learn
    from stockade.learn.output import check_and_write
    from stockade.learn.session import record
    from stockade.learn.skip import known_from_document, known_from_policy, with_known
    from stockade.linux.syscall_table import native_arch
    from stockade.policy.loader import load_policy

    argv = list(args.cmd)
    if argv and argv[0] == "--":
        argv = argv[1:]
    if args.image:
        if args.rootfs:
            raise StockadeError("learn: --image and --rootfs exclude each other", exit_code=2)
        return _with_image(args, argv)
    if not argv:
        raise StockadeError("learn: no command given (stockade learn -o OUT.yaml -- CMD ...)")
    if not os.path.isdir(os.path.dirname(os.path.abspath(args.output))):
        raise StockadeError(f"learn: the directory of {args.output} does not exist", exit_code=2)
    _check_action(args.default_action)
    old: dict[str, Any] | None = None
    if args.append and os.path.exists(args.output):
        load_policy(args.output)  # refuse to merge into something that is not a policy
        with open(args.output, encoding="utf-8") as fh:
            old = yaml.safe_load(fh)
    base = load_policy(args.policy) if args.policy else load_policy("default")
    if getattr(args, "as_user", None):  # --image: the identity the image resolved to
        import dataclasses

        from stockade.policy.render import policy_digest

        uid, gid = args.as_user
        base = dataclasses.replace(base, user=dataclasses.replace(base.user, uid=uid, gid=gid))
        base = dataclasses.replace(base, digest=policy_digest(base))  # caches key on it
    skip = known_from_document(old)
    if args.policy:
        skip = sorted(set(skip) | known_from_policy(base))
    outcome = record(argv, base, rootfs=args.rootfs, binds=args.bind, env=_env(args.env),
                     cwd=args.cwd, skip=skip)
    warnings: list[str] = []
    rec = outcome.recording
    status = 0
    if outcome.exit_code is None:
        warnings.append(f"the workload never ran ({outcome.failure}); the policy allows only "
                        "what a run needs to start")
        status = 1
    elif outcome.signal is not None:
        warnings.append(f"the workload was killed by signal {outcome.signal}; the policy "
                        "covers what it did until then")
        status = 1
    elif outcome.exit_code != 0:
        warnings.append(f"the workload exited with status {outcome.exit_code}; the policy "
                        "covers what it did, which may not be all it needs")
        status = 1
    if outcome.exit_code is not None and not rec.started:
        raise StockadeError("learn: the recorder never saw the workload start; nothing written",
                            exit_code=2)
    learned = learn(rec, native_arch(), fresh_mounts=[e.path for e in base.filesystem.tmpfs],
                    root=os.path.realpath(args.rootfs) if args.rootfs else "/")
    if old is not None:
        learned = with_known(learned, skip)
    warnings += learned.warnings
    refused = refused_by(base, learned) if not args.policy else {}
    if refused:
        warnings.append(f"{base.name} refuses {', '.join(sorted(refused))}, which the workload "
                        f"called (the recorder let them through): the policy keeps {base.name}'s "
                        "answer, so it is no looser than what the workload was recorded under")
    desc = "learned by stockade from: " + " ".join(" ".join(argv).split())[:160]
    doc = build(learned, name=_name(args), description=desc,
                base=base if args.policy else None, base_ref=_base_ref(args.policy, args.output),
                default_action=args.default_action,
                resources=suggested_resources(outcome.memory_peak, outcome.pids_peak),
                recorded_under=base)
    if old is not None:
        doc = merge(old, doc)
    for w in warnings:
        print(f"stockade learn: warning: {w}", file=sys.stderr)
    check_and_write(doc, args.output)
    print(f"wrote {args.output}: {len(learned.allow) + len(learned.rules)} syscall entries, "
          f"{rec.notifications} notifications from {rec.tasks} tasks", file=sys.stderr)
    return status


def _base_ref(policy: str | None, output: str) -> str | None:
    if policy is None:
        return None
    if "/" not in policy and not policy.endswith((".yaml", ".yml")):
        return policy  # a preset name
    return os.path.abspath(policy)


def _check_action(text: str) -> None:
    from stockade.errors import Location
    from stockade.policy.merge.syscalls import parse_action

    parse_action(text, Location("--default"))  # raises PolicyError (exit 2) with a suggestion
