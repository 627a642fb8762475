"""Which cluster a command is about, and joining it as a driver for the command's duration."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator

from babyray.cli.node_records import head_address

__all__ = ["add_connection_arguments", "cluster_address", "connected"]


def add_connection_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--address", help="HEAD:PORT (default: BABYRAY_ADDRESS, or the head started on this host)"
    )
    parser.add_argument("--temp-dir", help="root of session directories and node records")


def cluster_address(args: argparse.Namespace) -> str | None:
    """``--address``, else the environment's (BABYRAY_ADDRESS, RAY_ADDRESS), else the head
    of a node started on this host; None if there is none."""
    from babyray.api.runtime import environment_address

    return args.address or environment_address() or head_address(args.temp_dir)


@contextlib.contextmanager
def connected(args: argparse.Namespace) -> Iterator[str]:
    """Join the cluster as a driver for the command's duration; yields its address.

    Raises:
        SystemExit: no cluster address is known.
    """
    address = cluster_address(args)
    if not address:
        raise SystemExit(
            "no cluster address: pass --address HEAD:PORT, set BABYRAY_ADDRESS, "
            "or start a head on this host with `babyray start --head`"
        )
    import babyray

    # The cluster's token file is found under its temp dir, as the head's address was.
    babyray.init(address=address, temp_dir=args.temp_dir)
    try:
        yield address
    finally:
        babyray.shutdown()
