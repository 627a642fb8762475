"""The records of the nodes ``babyray start`` started on this host, one JSON file per node.

Each record (in ``<temp_dir>/nodes``, or the ``state_dir`` setting) names the node's
session directory, the process group of its Thespian admin, its address, its head's
address, its auth token file and the network namespace it was started in: ``babyray stop``
kills by them, drivers and ``babyray get-auth-token`` find the token by them, and
``babyray logs`` finds the session logs. Records of other network namespaces (simulated
hosts, see deploy/netns.py) are someone else's and are skipped unless asked for.
"""

from __future__ import annotations

import glob
import json
import os

from babyray import config, procfs

__all__ = ["head_address", "read_records", "record_path", "recorded_token_file", "state_dir", "write_record"]


def state_dir(temp_dir: str | None = None) -> str:
    """The records' directory (made if missing)."""
    settings = config.Settings({"temp_dir": temp_dir})
    path = settings.state_dir or os.path.join(settings.temp_dir, "nodes")
    os.makedirs(path, exist_ok=True)
    return path


def record_path(session_dir: str, temp_dir: str | None = None) -> str:
    """Where the record of the node of ``session_dir`` goes."""
    return os.path.join(state_dir(temp_dir), f"{os.path.basename(session_dir)}.json")


def write_record(path: str, record: dict) -> None:
    """Store ``record``, stamped with this process's network namespace."""
    with open(path, "w") as f:
        json.dump({**record, "netns": procfs.network_namespace()}, f)


def read_records(temp_dir: str | None, all_hosts: bool = False) -> list[tuple[str, dict]]:
    """(path, record) of the nodes started in this network namespace (every one with
    ``all_hosts``), oldest session first."""
    netns = procfs.network_namespace()
    found = []
    for path in sorted(glob.glob(os.path.join(state_dir(temp_dir), "*.json"))):
        try:
            with open(path) as f:
                record = json.load(f)
        except (OSError, ValueError):
            continue
        if all_hosts or record.get("netns") == netns:
            found.append((path, record))
    return found


def recorded_token_file(address: str, temp_dir: str | None = None) -> str | None:
    """The token file of a node started on this host in the cluster whose head is ``address``."""
    for _, record in read_records(temp_dir):
        if record.get("head_address") == address and record.get("token_file"):
            return record["token_file"]
    return None


def head_address(temp_dir: str | None = None) -> str | None:
    """The head address of the oldest node started on this host, if any."""
    for _, record in read_records(temp_dir):
        return record["head_address"]
    return None
