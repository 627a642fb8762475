"""The ``babyray`` command (``python -m babyray.cli``): one module per group of subcommands.

- ``cluster_commands``: start, stop, status, get-auth-token (the nodes on this host);
- ``state_commands``: list, get, summary, timeline, memory (the cluster's state, as a driver);
- ``log_commands``: logs (the session logs on this host, read by ``babyray.log_reader``);
- ``node_records``: the records of the nodes started on this host, shared by all of them;
- ``connection``: which cluster a command is about, and joining it.

Tables go to stdout; progress, notes and errors to stderr.
"""

from __future__ import annotations

import argparse

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    from babyray.cli import cluster_commands, log_commands, state_commands

    parser = argparse.ArgumentParser(prog="babyray", description="Start, stop and inspect babyray nodes.")
    sub = parser.add_subparsers(dest="command", required=True)
    for commands in (cluster_commands, state_commands, log_commands):
        commands.add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)
