"""Thespian set-up shared by every babyray process that starts or joins an actor system.

Importing this module installs babyray's patches of Thespian's internals
(``babyray.thespian_patches.apply``); every process that starts or joins an actor system
imports it before its admin is forked, so every actor process inherits them. This module
itself uses Thespian's public interface only: the capabilities an admin is started with,
its logging configuration, and the environment variables it reads. ``bind_to_node_ip``
makes the process (and those it forks) listen on the node's own address and log into the
session; ``authenticate_messages`` makes every message carry a proof of the cluster token,
checked before it is unpickled (babyray.auth). Both must run before the admin is forked and
before a driver opens its actor system.
"""

from __future__ import annotations

import os

from babyray import auth, thespian_patches
from babyray.ids import NodeID

ADMIN_PORT = "Admin Port"
CONVENTION = "Convention Address.IPv4"
NODE_CAPABILITY = "babyray_node"

thespian_patches.apply()


def bind_to_node_ip(node_ip: str, log_dir: str) -> None:
    """Make this process (and the Thespian processes it forks) listen on ``node_ip`` only,
    and send Thespian's own log to ``<log_dir>/thespian.log``."""
    os.environ["THESPIAN_BASE_IPADDR"] = node_ip
    os.environ["THESPLOG_FILE"] = os.path.join(log_dir, "thespian.log")
    os.environ.setdefault("THESPLOG_THRESHOLD", "WARNING")
    thespian_patches.add_local_address(node_ip)


def authenticate_messages(token: str | None) -> None:
    """Sign this process's Thespian messages with ``token`` and refuse any incoming one that
    does not prove it; None: plain pickle, unauthenticated (unsafe)."""
    auth.use_token(token)


def log_defs(log_dir: str) -> dict:
    """Logging config for Thespian's admin: actors' stdlib logging lands in the session."""
    return {
        "version": 1,
        "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
        "handlers": {
            "file": {
                "class": "logging.FileHandler",
                "formatter": "plain",
                "filename": os.path.join(log_dir, "actors.log"),
            }
        },
        "root": {"handlers": ["file"], "level": "WARNING"},
    }


def capabilities(node_ip: str, port: int, node_id: NodeID, head: str | None = None) -> dict:
    caps = {ADMIN_PORT: port, NODE_CAPABILITY: node_id}
    if head:
        caps[CONVENTION] = head
    return caps
