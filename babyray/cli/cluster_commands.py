"""``babyray start``, ``stop``, ``status`` and ``get-auth-token``: the nodes on this host.

``babyray start --head`` starts the convention leader (GCS, global scheduler, head node);
``babyray start --address HEAD:PORT`` starts a member node that joins it. Both return once
the node is registered: the Thespian admin runs on as a daemon (or, with ``--block``, the
command stays in the foreground until signalled, for systemd). Each start writes a node
record (babyray.cli.node_records), so ``babyray stop`` can kill exactly what was started on
this host (in this network namespace), by process group. ``babyray status`` joins as a driver and
prints the node table. Every node proves the cluster's auth token (babyray.auth): the head
generates one unless given one, each node keeps it in ``<session>/auth_token`` (0600) and
records where, so drivers on its host find it; ``babyray get-auth-token`` prints it.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import signal
import sys
import time
from collections import Counter
from typing import Any

from babyray import config
from babyray.cli.connection import add_connection_arguments, cluster_address, connected
from babyray.cli.node_records import read_records, record_path, recorded_token_file, write_record
from babyray.procfs import group_members

__all__ = ["add_commands"]

DEFAULT_PORT = 1900
STOP_GRACE = 3.0


# ---- start ------------------------------------------------------------------------------


def _resources(args: argparse.Namespace) -> dict:
    from babyray.cluster import default_resources

    custom = json.loads(args.resources) if args.resources else {}
    if not isinstance(custom, dict):
        raise SystemExit("--resources must be a JSON object, e.g. '{\"GPU_big\": 2}'")
    return default_resources(args.num_cpus, args.num_gpus, custom)


def _settings(args: argparse.Namespace) -> dict:
    settings: dict[str, Any] = {}
    for name in ("node_timeout", "heartbeat_period", "scheduling_policy", "gcs_url", "metrics_export_port"):
        value = getattr(args, name, None)
        if value is not None:
            settings[name] = value
    return settings


# ---- auth token -------------------------------------------------------------------------


def _node_token(args: argparse.Namespace, head_address: str) -> tuple[str | None, str]:
    """The token this node proves, and where it came from (for the report). A head started
    again where nodes of its cluster are still recorded (after a crash) takes their token, so
    they and its drivers can reach it; otherwise a head makes a new one.

    Raises:
        auth.AuthConfigError: a member with no token to present.
    """
    from babyray import auth

    if args.no_auth:
        return None, "authentication is OFF (--no-auth): anyone who reaches a port runs code here"
    if args.token_file:
        return auth.read_token_file(args.token_file), f"from {args.token_file}"
    token = auth.token_from_environment()
    if token:
        return token, "from the environment"
    recorded = recorded_token_file(head_address, args.temp_dir)
    if recorded:
        return auth.read_token_file(recorded), f"from {recorded}"
    if args.head:
        return auth.generate_token(), "generated"
    raise auth.AuthConfigError(
        f"no auth token for the cluster at {args.address}: pass --token-file PATH (a copy "
        "of the head's token, `babyray get-auth-token` on the head prints it) or set "
        "BABYRAY_AUTH_TOKEN_PATH"
    )


def cmd_get_auth_token(args: argparse.Namespace) -> int:
    from babyray import auth

    token = auth.token_from_environment()
    if not token:
        address = cluster_address(args)
        path = recorded_token_file(address, args.temp_dir) if address else None
        if not path:
            print(
                "no auth token: no babyray node was started on this host (give --address HEAD:PORT of one "
                "that was) and BABYRAY_AUTH_TOKEN(_PATH) is not set",
                file=sys.stderr,
            )
            return 1
        token = auth.read_token_file(path)
    print(token)
    return 0


def cmd_start(args: argparse.Namespace) -> int:
    from babyray.actors.admin_output import write_output_to
    from babyray.cluster import own_ip_towards
    from babyray.session import new_session_dir, node_output

    if bool(args.head) == bool(args.address):
        print("babyray start: give either --head or --address HEAD:PORT", file=sys.stderr)
        return 2
    if args.metrics_export_port and not args.head:
        print(
            "babyray start: --metrics-export-port is for the head (--head): it serves the cluster's metrics",
            file=sys.stderr,
        )
        return 2
    node_ip = config.Settings({"node_ip": args.node_ip}).node_ip or (
        own_ip_towards(args.address) if args.address else "127.0.0.1"
    )
    session_dir = new_session_dir(args.temp_dir)
    if args.block:  # foreground (systemd Type=simple): no fork, output stays where it is
        result = _start_node(args, session_dir, node_ip)
        print(result["report"], flush=True)
        if not result["ok"]:
            return 1
        _block_until_signalled(result["record_path"], result["record"])
        return 0
    # The admin is forked from the process that starts it and inherits every open file (see
    # docs/design.md, "Thespian: its log and the actors' stderr"): start it from a child whose
    # output is the session log, so nothing keeps our caller's pipes open, and get the
    # child's report over a pipe, one line.
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        null_fd = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null_fd, 0)
        write_output_to(node_output(session_dir))
        try:
            result = _start_node(args, session_dir, node_ip)
        except BaseException as exc:  # report anything, never fall back into the parent's code
            result = {"ok": False, "report": f"babyray start failed: {exc!r}"}
        os.write(write_end, (json.dumps({"ok": result["ok"], "report": result["report"]}) + "\n").encode())
        os._exit(0 if result["ok"] else 1)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        line = pipe.readline()
    os.waitpid(pid, 0)
    if not line:
        print(f"babyray start failed (see {node_output(session_dir)})", file=sys.stderr)
        return 1
    result = json.loads(line)
    print(result["report"], file=sys.stdout if result["ok"] else sys.stderr, flush=True)
    return 0 if result["ok"] else 1


def _start_node(args: argparse.Namespace, session_dir: str, node_ip: str) -> dict:
    """Start the node's admin and parts; record it; return the report for the terminal."""
    from babyray import auth
    from babyray.cluster import object_store_size, start_head, start_member
    from babyray.session import session_pids

    token_file = None
    try:
        resources = _resources(args)
        memory = object_store_size(args.object_store_memory)
        token, token_source = _node_token(args, f"{node_ip}:{args.port}" if args.head else args.address)
        if token:
            token_file = os.path.join(session_dir, auth.TOKEN_FILE_NAME)
            auth.write_token_file(token_file, token)
        if args.head:
            handle = start_head(
                session_dir,
                node_ip,
                args.port,
                resources,
                memory,
                settings=_settings(args),
                directory=True,
                token=token,
            )
        else:
            handle = start_member(
                session_dir,
                node_ip,
                args.port,
                args.address,
                resources,
                memory,
                settings=_settings(args),
                token=token,
            )
    except BaseException as exc:
        return {"ok": False, "report": f"babyray start failed: {exc}\n(logs: {session_dir}/logs)"}
    pids = session_pids(session_dir)
    pgid = os.getpgid(pids[0]) if pids else 0
    record = {
        "session_dir": session_dir,
        "pgid": pgid,
        "node_ip": node_ip,
        "port": args.port,
        "head": bool(args.head),
        "head_address": handle.head_address,
        "node_id": handle.node_id,
        "arena": handle.arena_name,
        "started": time.time(),
        "cli_pid": os.getpid(),
        "token_file": token_file,
    }
    path = record_path(session_dir, args.temp_dir)
    write_record(path, record)
    role = "head" if args.head else "member"
    lines = [
        f"babyray {role} node {handle.node_id} started on {node_ip}:{args.port} "
        f"(resources {resources}; session {session_dir})"
    ]
    lines.append(
        f"Auth token ({token_source}): {token_file} (0600; `babyray get-auth-token` prints it)"
        if token_file
        else f"WARNING: {token_source}"
    )
    if args.head:
        lines.append(
            f"Connect with: babyray start --address {handle.head_address} --token-file COPY_OF_TOKEN  |  "
            f'ray.init(address="{handle.head_address}") (on other hosts with BABYRAY_AUTH_TOKEN_PATH)'
        )
        if args.metrics_export_port:
            lines.append(f"Metrics (Prometheus): http://{node_ip}:{args.metrics_export_port}/metrics")
    lines.append(handle.head_address)
    return {"ok": True, "report": "\n".join(lines), "record": record, "record_path": path}


def _block_until_signalled(path: str, record: dict) -> None:
    stop = {"now": False}

    def on_signal(signum: int, frame: Any) -> None:
        stop["now"] = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    while not stop["now"] and group_members(int(record["pgid"])):
        time.sleep(0.5)
    _stop_record(path, record)


# ---- stop -------------------------------------------------------------------------------


def _stop_record(path: str, record: dict) -> list[int]:
    from babyray.session import kill_session_processes

    pgid = int(record.get("pgid") or 0)
    killed = []
    if pgid > 1:
        members = group_members(pgid)
        for sig, wait in ((signal.SIGTERM, STOP_GRACE), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(pgid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + wait
            while group_members(pgid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if not group_members(pgid):
                break
        killed.extend(members)
    killed.extend(kill_session_processes(record["session_dir"]))
    if record.get("token_file"):  # the node's copy of the token goes with it
        try:
            os.unlink(record["token_file"])
        except FileNotFoundError:
            pass
    tag = os.path.basename(record["session_dir"])[-6:]
    for segment in glob.glob(f"/dev/shm/babyray_{tag}_*"):
        try:
            os.unlink(segment)
        except FileNotFoundError:
            pass
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    return killed


def cmd_stop(args: argparse.Namespace) -> int:
    records = read_records(args.temp_dir, all_hosts=args.all)
    for path, record in records:
        killed = _stop_record(path, record)
        role = "head" if record.get("head") else "member"
        print(f"stopped {role} {record.get('node_ip')}:{record.get('port')} ({len(set(killed))} processes)")
    if not records:
        print("no babyray node was started on this host")
    return 0


# ---- status -----------------------------------------------------------------------------


def cmd_status(args: argparse.Namespace) -> int:
    from babyray.actors.bundles import is_group_resource
    from babyray.api import context
    from babyray.util.state import list_placement_groups

    with connected(args) as address:
        infos = context.runtime().nodes()
        groups = [g for g in list_placement_groups(limit=None) if g["state"] != "REMOVED"]
    alive = [n for n in infos if n.alive]
    print(f"cluster {address}: {len(alive)} alive node(s), {len(infos) - len(alive)} dead")
    print(f"{'node id':<20} {'address':<22} {'alive':<6} {'queue':>5}  resources (free/total)")
    for n in infos:
        res = ", ".join(
            f"{k} {n.available.get(k, 0):g}/{v:g}"
            for k, v in sorted(n.resources.items())
            if not is_group_resource(k)
        )
        print(f"{n.node_id:<20} {n.address:<22} {str(n.alive):<6} {n.queue_length:>5}  {res}")
    states = Counter(g["state"] for g in groups)
    print(
        f"placement groups: {len(groups)}" + "".join(f", {n} {state}" for state, n in sorted(states.items()))
    )
    for g in groups:
        bundles = " ".join(
            f"{i}:{_shape(b)}@{g['bundles_to_node_id'].get(i, '-')}" for i, b in enumerate(g["bundles"])
        )
        print(
            f"  {g['placement_group_id']:<20} {g['name'] or '-':<14} {g['state']:<8} {g['strategy']:<13} {bundles}"
        )
    return 0


def _shape(resources: dict) -> str:
    return ",".join(f"{k}={v:g}" for k, v in sorted(resources.items()))


# ---- the parser -------------------------------------------------------------------------


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add start, stop, status and get-auth-token to the ``babyray`` subparsers."""
    start = sub.add_parser("start", help="start a head or member node on this host")
    start.add_argument("--head", action="store_true", help="start the head (convention leader, GCS)")
    start.add_argument("--address", help="HEAD:PORT of the head to join as a member")
    start.add_argument("--port", type=int, default=DEFAULT_PORT, help="this node's Thespian admin port")
    start.add_argument(
        "--node-ip", help="this host's address in the cluster (every socket listens only on it)"
    )
    start.add_argument("--num-cpus", type=int)
    start.add_argument("--num-gpus", type=int)
    start.add_argument("--resources", help="custom resources as JSON, e.g. '{\"special\": 1}'")
    start.add_argument("--object-store-memory", type=int, help="bytes of the node's shared-memory arena")
    start.add_argument("--gcs-url", help="GCS store URL (head only; default SQLite in the session)")
    start.add_argument(
        "--metrics-export-port",
        type=int,
        help="head only: serve ray.util.metrics values in Prometheus format on this port (GET /metrics)",
    )
    start.add_argument(
        "--node-timeout", type=float, help="seconds of heartbeat silence before a node is dead"
    )
    start.add_argument("--heartbeat-period", type=float, help="seconds between a node's heartbeats")
    start.add_argument(
        "--scheduling-policy",
        choices=("locality", "queue"),
        help="placement: locality-aware (default) or queue-only, for the whole cluster (head only)",
    )
    start.add_argument(
        "--token-file",
        help="file holding the cluster's auth token (a member: a copy of the "
        "head's; default: BABYRAY_AUTH_TOKEN(_PATH), a head generates one)",
    )
    start.add_argument(
        "--no-auth",
        action="store_true",
        help="UNSAFE: no token authentication; anyone who reaches a port runs code in the cluster",
    )
    start.add_argument("--temp-dir", help="root of session directories and node records")
    start.add_argument("--block", action="store_true", help="stay in the foreground; stop the node on exit")
    start.set_defaults(func=cmd_start)
    stop = sub.add_parser("stop", help="stop the nodes started on this host")
    stop.add_argument("--all", action="store_true", help="also nodes recorded by other network namespaces")
    stop.add_argument("--temp-dir")
    stop.set_defaults(func=cmd_stop)
    status = sub.add_parser("status", help="print the cluster's nodes, resources and load")
    add_connection_arguments(status)
    status.set_defaults(func=cmd_status)
    token = sub.add_parser(
        "get-auth-token", help="print the auth token of the cluster a node on this host is in"
    )
    token.add_argument(
        "--address", help="HEAD:PORT of the cluster (default: BABYRAY_ADDRESS, else this host's node)"
    )
    token.add_argument("--temp-dir")
    token.set_defaults(func=cmd_get_auth_token)
