"""`stockade gc`: remove the devices, nft tables, forwarding changes and records that
runs killed before their own clean-up left (a later `network.mode: private` run does the
same for the slots it meets), and end the pasta of a killed rootless run."""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quiet", "-q", action="store_true", help="print nothing")


def main(args: argparse.Namespace) -> int:
    import os

    from stockade.runner.network import rootless
    from stockade.runner.network.addressing import state_dir
    from stockade.runner.network.gc import collect

    # root's jails live on the host side; anyone's rootless jails leave only a pasta
    removed = collect(state_dir()) if os.geteuid() == 0 else []
    removed += rootless.sweep(state_dir(rootless.SUBDIR))
    if not args.quiet:
        for line in removed:
            print(f"removed {line}")
        if not removed:
            print("nothing to remove")
    return 0
