"""Starting the parts of a cluster in a Thespian actor system.

``start_head`` starts (or joins) a multiprocTCPBase admin and creates the GCS, the global
scheduler and the node's object store and local scheduler in it. Used by ``init()`` for a
private cluster and by ``babyray start --head``. ``start_member`` starts a member admin that
joins the head's convention, looks the head's parts up (``lookup_cluster``) and creates
the member node's store and local scheduler on its own admin (``babyray start --address``).
``join_as_driver`` gives a driver on any host a small admin of its own in the convention.
"""

from __future__ import annotations

import glob
import json
import os
import random
import socket
import time
from dataclasses import dataclass
from typing import Any

from thespian.actors import ActorExitRequest, ActorSystem

from babyray import auth, config, exceptions, log
from babyray.actors.admin_lifetime import tie_next_admin, untie
from babyray.actors.admin_output import send_next_admin_output_to
from babyray.actors.base import PartActor
from babyray.actors.global_scheduler import GlobalScheduler
from babyray.actors.head_directory import DIRECTORY_NAME, HEAD_CAPABILITY, DirectoryProbe, HeadDirectory
from babyray.actors.local_scheduler import LocalScheduler
from babyray.actors.object_store import ObjectStore
from babyray.actors.thespian_setup import (
    ADMIN_PORT,
    CONVENTION,
    authenticate_messages,
    bind_to_node_ip,
    capabilities,
    log_defs,
)
from babyray.gcs.gcs_actor import GcsActor
from babyray.gcs.store import GcsSchemaVersionError, GcsStore, GcsStoreUnavailable
from babyray.ids import NodeID, new_node_id
from babyray.protocol import cluster as cm
from babyray.protocol import gcs as gm
from babyray.session import end_process_group, reap_child
from babyray.thespian_patches import AdminAnswer, query_admin, shutdown_bounded, started_admins

START_TIMEOUT = 30.0
_START_POLL = 0.5  # seconds between looks at a starting part's log
SHUTDOWN_WAIT = (
    0.8  # seconds the admin has to confirm shutdown (it takes about 0.3 s when every part answers)
)
ADMIN_EXIT_WAIT = 0.3  # seconds more its processes have to exit before they are killed
_STORE_CHECK_TIMEOUT = 3.0  # seconds a first connection to the GCS store may take
# free_port: random ports from FREE_PORT_FLOOR up to the kernel's range for outgoing connections
EPHEMERAL_PORTS_FILE = "/proc/sys/net/ipv4/ip_local_port_range"
FREE_PORT_FLOOR = 10000
FREE_PORT_TRIES = 64
# Seconds lookup_cluster waits for the head's admin to answer whether it takes our messages.
ADMIN_QUERY_TIMEOUT = 1.0


class ClusterStartError(RuntimeError):
    """A part of the cluster did not start."""


class TokenRefused(ClusterStartError, exceptions.AuthenticationError):
    """The head refused this process's messages: the proof of its auth token did not verify."""


@dataclass
class HeadHandle:
    """Addresses of a running head's parts, as the process that started it sees them."""

    system: Any
    session_dir: str
    node_ip: str
    port: int
    node_id: NodeID
    gcs: Any
    global_scheduler: Any
    scheduler: Any
    store: Any
    arena_name: str
    head_address: str = ""

    @property
    def address(self) -> str:
        return f"{self.node_ip}:{self.port}"


NodeHandle = HeadHandle  # a member node's handle has the same fields


def _ask_started(system: Any, address: Any, msg: Any, part: type[PartActor], log_dir: str) -> cm.Started:
    """Send a part its start message and wait for its Started reply.

    A part whose start handler raises logs ``handler_failed`` and sends nothing back, so its
    log is watched meanwhile and such a failure reported at once.

    Raises:
        ClusterStartError: naming the part, the cause and a log file that exists.
    """
    what = part.component
    deadline = time.monotonic() + START_TIMEOUT
    reply = system.ask(address, msg, _START_POLL)
    while not isinstance(reply, cm.Started):
        if isinstance(reply, gm.GcsError):  # the part refused its start message
            raise ClusterStartError(
                f"{what} did not start: {reply.error_type}: {reply.message} (see {_part_log(log_dir, what)})"
            )
        failure = _start_failure(log_dir, what)
        if reply is not None or failure is not None or time.monotonic() >= deadline:
            cause, log_file = failure or (
                str(reply) if reply is not None else f"no reply within {START_TIMEOUT:.0f}s",
                _part_log(log_dir, what),
            )
            raise ClusterStartError(f"{what} did not start: {cause} (see {log_file})")
        reply = system.listen(_START_POLL)
    return reply


def _start_failure(log_dir: str, component: str) -> tuple[str, str] | None:
    """The error a part's start handler logged (``handler_failed``), with the log's path."""
    for path in glob.glob(os.path.join(log_dir, f"{component}-*.jsonl")):
        with open(path) as f:
            for line in f:
                if '"handler_failed"' not in line:
                    continue
                event = json.loads(line)
                lines = [text for text in event.get("exception", "").splitlines() if text.strip()]
                return (lines[-1] if lines else event["event"]), path
    return None


def _part_log(log_dir: str, component: str) -> str:
    """The part's own log if it wrote one, else Thespian's logs; one that exists."""
    for pattern in (f"{component}-*.jsonl", "actors.log", "thespian.log"):
        found = sorted(glob.glob(os.path.join(log_dir, pattern)), key=os.path.getmtime)
        if found:
            return found[-1]
    return f"{log_dir} (no log was written)"


def check_gcs_store(settings: dict) -> None:
    """Open the GCS store the settings (or BABYRAY_GCS_URL) name, if any, before anything starts.

    Raises:
        ClusterStartError: naming the URL (password hidden) and why it cannot be used.
    """
    resolved = config.Settings(settings)
    if not resolved.gcs_url:
        return  # a SQLite file in the session directory
    try:
        GcsStore(
            resolved.gcs_url, prefix=resolved.gcs_table_prefix, connect_timeout=_STORE_CHECK_TIMEOUT
        ).close()
    except (ValueError, GcsStoreUnavailable, GcsSchemaVersionError) as exc:
        raise ClusterStartError(f"the GCS store cannot be used: {exc}") from None


def start_system(
    caps: dict, session_dir: str, dies_with_starter: bool = False, output: str | None = None
) -> ActorSystem:
    """Start (or join) the multiprocTCPBase admin ``caps`` describe; stop it with ``stop_system``.

    With ``dies_with_starter``, an admin started here ends with every process of its cluster
    when this process ends, however it ends (see babyray.actors.admin_lifetime). With
    ``output``, an admin started here, and every process of its cluster, writes its stdout and
    stderr to that file rather than this process's (babyray.actors.admin_output).
    """
    known = len(started_admins())
    if dies_with_starter:
        tie_next_admin(session_dir)
    send_next_admin_output_to(output)
    try:
        system = ActorSystem("multiprocTCPBase", caps, logDefs=log_defs(os.path.join(session_dir, "logs")))
    finally:
        untie()
        send_next_admin_output_to(None)
    started = started_admins()[known:]
    system.babyray_admin_pid = started[0] if started else 0  # the admin this process forked, if any
    return system


def stop_system(system: Any, confirm: bool = True) -> None:
    """Shut the admin down; if this process started it, leave none of its processes behind.

    With ``confirm``, Thespian waits for the admin to confirm for ``SHUTDOWN_WAIT`` seconds
    (not its own 10 s); without (a part is known to be stuck, so the admin cannot), it does not
    wait. Thespian's admin daemonizes: the child this process forked starts a process group,
    forks the admin into it and exits. Once the admin confirmed, every process of that group
    (admin, logger, parts, workers) still running ``ADMIN_EXIT_WAIT`` seconds later is killed;
    if it did not, they are killed at once. So this takes at most about ``SHUTDOWN_WAIT``
    seconds. That child is collected last, so its pid, the group's id, cannot be reused before.
    """
    wait = SHUTDOWN_WAIT if confirm else 0.0
    started = time.monotonic()
    try:
        shutdown_bounded(system, wait)
    finally:
        starter = getattr(system, "babyray_admin_pid", 0)
        if starter:
            confirmed = time.monotonic() - started < wait  # Thespian returns at the timeout otherwise
            killed = end_process_group(starter, ADMIN_EXIT_WAIT if confirmed else 0.0)
            if killed:
                log.get_logger("driver").warning("admin_group_killed", pids=killed)
            reap_child(starter)


def start_head(
    session_dir: str,
    node_ip: str,
    port: int,
    resources: dict,
    object_store_memory: int,
    settings: dict | None = None,
    directory: bool = False,
    *,
    token: str | None,
    dies_with_starter: bool = False,
    output: str | None = None,
) -> HeadHandle:
    """Start an admin on ``node_ip:port`` with the head's parts; return their addresses.

    With ``dies_with_starter`` (a driver's private cluster) the cluster ends when this process
    ends, however it ends (see ``start_system``); with ``output`` its processes write their
    stdout and stderr to that file, not this process's.

    With ``directory`` the admin is a convention leader that members and drivers can join
    (``babyray start --head``): it gets the ``babyray_head`` capability and a HeadDirectory.
    Every process of the cluster proves ``token`` (None: no authentication, unsafe).

    Raises:
        ClusterStartError: the GCS store cannot be used, or a part did not start.
    """
    settings = dict(settings or {})
    check_gcs_store(settings)
    policy = config.Settings(settings).scheduling_policy
    log_dir = os.path.join(session_dir, "logs")
    bind_to_node_ip(node_ip, log_dir)
    authenticate_messages(token)
    node_id = new_node_id()
    caps = capabilities(node_ip, port, node_id)
    if directory:
        caps[HEAD_CAPABILITY] = True
    system = start_system(caps, session_dir, dies_with_starter, output)
    try:
        gcs = system.createActor(GcsActor)
        _ask_started(system, gcs, cm.StartGcs(session_dir, settings), GcsActor, log_dir)
        global_scheduler = system.createActor(GlobalScheduler)
        _ask_started(
            system,
            global_scheduler,
            cm.StartGlobalScheduler(gcs, session_dir, policy),
            GlobalScheduler,
            log_dir,
        )
        scheduler, store, arena_name = _start_node_parts(
            system,
            session_dir,
            node_ip,
            port,
            node_id,
            resources,
            object_store_memory,
            gcs,
            global_scheduler,
            settings,
            f"{node_ip}:{port}",
        )
        if directory:
            info = cm.ClusterInfo(
                f"{node_ip}:{port}", gcs, global_scheduler, node_id, scheduler, store, policy
            )
            head_directory = system.createActor(HeadDirectory, globalName=DIRECTORY_NAME)
            _ask_started(system, head_directory, cm.SetClusterInfo(info), HeadDirectory, log_dir)
    except BaseException:
        stop_system(system)
        raise
    return HeadHandle(
        system,
        session_dir,
        node_ip,
        port,
        node_id,
        gcs,
        global_scheduler,
        scheduler,
        store,
        arena_name,
        f"{node_ip}:{port}",
    )


def _start_node_parts(
    system: Any,
    session_dir: str,
    node_ip: str,
    port: int,
    node_id: NodeID,
    resources: dict,
    object_store_memory: int,
    gcs: Any,
    global_scheduler: Any,
    settings: dict,
    head_address: str,
) -> tuple[Any, Any, str]:
    """Create a node's object store and local scheduler on ``system``'s own admin, in the
    cluster whose head admin is at ``head_address`` (HOST:PORT)."""
    store = system.createActor(ObjectStore)
    log_dir = os.path.join(session_dir, "logs")
    arena_name = _ask_started(
        system,
        store,
        cm.StartObjectStore(node_id, session_dir, object_store_memory, gcs),
        ObjectStore,
        log_dir,
    ).detail
    scheduler = system.createActor(LocalScheduler)
    _ask_started(
        system,
        scheduler,
        cm.StartNode(
            node_id,
            f"{node_ip}:{port}",
            session_dir,
            resources,
            gcs,
            global_scheduler,
            store,
            object_store_memory,
            settings,
            head_address,
        ),
        LocalScheduler,
        log_dir,
    )
    _wait_registered(system, gcs, node_id)
    return scheduler, store, arena_name


def _wait_registered(system: Any, gcs: Any, node_id: NodeID) -> None:
    """Return once the GCS lists ``node_id``: the scheduler registers with a one-way message,
    which may still be on its way (a first connection to the GCS) when it reports started."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        reply = system.ask(gcs, cm.GetNodes("launcher-nodes"), START_TIMEOUT)
        if isinstance(reply, cm.Nodes) and any(n.node_id == node_id and n.alive for n in reply.nodes):
            return
        time.sleep(0.01)
    raise ClusterStartError(f"node {node_id} did not register with the GCS within {START_TIMEOUT:.0f}s")


def lookup_cluster(system: Any, head_address: str, timeout: float = START_TIMEOUT) -> cm.ClusterInfo:
    """Ask the head (through a DirectoryProbe placed on it) where the cluster's parts are.

    Each try first asks the head's admin itself whether it takes this process's messages
    (``query_admin``, one round trip): a token it refuses fails at once, and nothing is placed
    on an address where no admin answers (a port of another service kept Thespian's actor
    creation waiting well past ``timeout``). The admin of ``system`` must also be in the head's
    convention; right after it starts, its registration may still be on its way, so creating
    the probe is retried until ``timeout``.

    Raises:
        TokenRefused: the head refused this process's auth token.
        ClusterStartError: no head answered at ``head_address`` within ``timeout``.
    """
    deadline = time.monotonic() + timeout
    last = "no try finished"
    while time.monotonic() < deadline:
        answer = query_admin(
            system, head_address, min(ADMIN_QUERY_TIMEOUT, max(0.0, deadline - time.monotonic()))
        )
        if answer is AdminAnswer.REFUSED:
            raise TokenRefused(_refusal_message(head_address))
        if answer is AdminAnswer.SILENT:
            last = f"no Thespian admin answered at {head_address}"
        else:
            try:
                probe = system.createActor(DirectoryProbe, targetActorRequirements={HEAD_CAPABILITY: True})
                reply = system.ask(
                    probe, cm.LookupCluster("lookup"), min(5.0, max(0.5, deadline - time.monotonic()))
                )
                system.tell(probe, ActorExitRequest())
                if isinstance(reply, cm.ClusterInfoReply):
                    return reply.info
                last = repr(reply)
            except Exception as exc:  # no compatible (head) admin registered yet
                last = repr(exc)
        time.sleep(0.3)
    raise ClusterStartError(
        f"no babyray head answered at {head_address} within {timeout:.0f}s (is "
        f"`babyray start --head` running there?): {last}"
    )


def _refusal_message(head_address: str) -> str:
    if auth.current_token() is None:
        return (
            f"the babyray head at {head_address} refused this process's messages: it requires the "
            "cluster's auth token, and authentication is off here (BABYRAY_AUTH_MODE=disabled); "
            "`babyray get-auth-token` on the head prints the token"
        )
    return (
        f"the babyray head at {head_address} refused this process's auth token: it is not the "
        "cluster's (`babyray get-auth-token` on the head prints the cluster's; give it with "
        "BABYRAY_AUTH_TOKEN or BABYRAY_AUTH_TOKEN_PATH), or the head runs without authentication "
        "(then set BABYRAY_AUTH_MODE=disabled here too)"
    )


def start_member(
    session_dir: str,
    node_ip: str,
    port: int,
    head_address: str,
    resources: dict,
    object_store_memory: int,
    settings: dict | None = None,
    *,
    token: str | None,
) -> NodeHandle:
    """Start a member admin on ``node_ip:port`` in the convention of ``head_address``.

    Its object store and local scheduler are created on this admin (the node's own host)
    and register with the head's GCS. ``token``: the cluster's (None: no authentication).
    """
    settings = dict(settings or {})
    log_dir = os.path.join(session_dir, "logs")
    bind_to_node_ip(node_ip, log_dir)
    authenticate_messages(token)
    node_id = new_node_id()
    system = start_system(capabilities(node_ip, port, node_id, head=head_address), session_dir)
    try:
        info = lookup_cluster(system, head_address)
        settings.setdefault("scheduling_policy", info.scheduling_policy)
        scheduler, store, arena_name = _start_node_parts(
            system,
            session_dir,
            node_ip,
            port,
            node_id,
            resources,
            object_store_memory,
            info.gcs,
            info.global_scheduler,
            settings,
            head_address,
        )
    except BaseException:
        stop_system(system)
        raise
    return NodeHandle(
        system,
        session_dir,
        node_ip,
        port,
        node_id,
        info.gcs,
        info.global_scheduler,
        scheduler,
        store,
        arena_name,
        head_address,
    )


def join_as_driver(
    session_dir: str,
    head_address: str,
    node_ip: str | None = None,
    timeout: float = START_TIMEOUT,
    *,
    token: str | None,
) -> tuple[Any, cm.ClusterInfo, str]:
    """Start a small admin for a driver process (in the convention, on a free port of this
    host's address) and look the cluster up; returns (system, cluster info, node ip)."""
    node_ip = config.Settings({"node_ip": node_ip}).node_ip or own_ip_towards(head_address)
    log_dir = os.path.join(session_dir, "logs")
    bind_to_node_ip(node_ip, log_dir)
    authenticate_messages(token)
    caps = {ADMIN_PORT: free_port(node_ip), CONVENTION: head_address, "babyray_driver": True}
    system = start_system(caps, session_dir, dies_with_starter=True)
    try:
        info = lookup_cluster(system, head_address, timeout)
    except BaseException:
        stop_system(system)
        raise
    return system, info, node_ip


def own_ip_towards(address: str) -> str:
    """This host's address on the route to ``address`` (no packet is sent)."""
    host = address.rpartition(":")[0] or address
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect((host, 9))
            return s.getsockname()[0]
        except OSError:
            return "127.0.0.1"


def free_port(host: str = "127.0.0.1") -> int:
    """A port free on ``host`` now, chosen at random below the kernel's range of ports for
    outgoing connections: a port the kernel hands out could be taken by another process's
    connection before its user binds it (an admin then never starts, and ``init`` failed
    after 11 s with "not a valid or useable ActorSystem Admin")."""
    below = _ephemeral_ports_start()
    candidates = range(FREE_PORT_FLOOR, below) if below > FREE_PORT_FLOOR else range(0)
    for port in random.sample(candidates, min(FREE_PORT_TRIES, len(candidates))):
        with socket.socket() as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return port
    with socket.socket() as s:  # no such range here: let the kernel choose
        s.bind((host, 0))
        return s.getsockname()[1]


def _ephemeral_ports_start() -> int:
    """The first port of the kernel's range for outgoing connections (0 if unknown)."""
    try:
        with open(EPHEMERAL_PORTS_FILE) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 0


def default_resources(num_cpus: int | None, num_gpus: int | None, resources: dict | None) -> dict:
    """A node's resources: CPUs default to the machine's count, plus custom resources."""
    total = {"CPU": float(num_cpus if num_cpus is not None else (os.cpu_count() or 1))}
    if num_gpus:
        total["GPU"] = float(num_gpus)
    for name, amount in (resources or {}).items():
        if name in ("CPU", "GPU"):
            raise ValueError(f"Use the num_cpus/num_gpus arguments for {name}, not resources=")
        total[name] = float(amount)
    return total


def object_store_size(requested: int | None) -> int:
    """The arena size of a node started here: ``requested``, else the setting, else the
    machine's default (``config.machine_object_store_default``)."""
    return (
        config.Settings({"object_store_memory": requested}).object_store_memory
        or config.machine_object_store_default()
    )
