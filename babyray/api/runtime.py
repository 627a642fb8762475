"""The driver's runtime: made by ``init()``, destroyed by ``shutdown()``.

For a bare ``init()`` it starts a private single-node cluster (a Thespian admin on a free
127.0.0.1 port with every part) and owns it: ``shutdown()`` or interpreter exit stops the
admin, every process of the session and the shared-memory arena; a driver killed at any moment
(even in ``init()`` or ``shutdown()``) takes them along (babyray.actors.admin_lifetime).

For ``init(address=...)`` it joins a running cluster: a small admin of the driver's own on
this host's address (in the head's convention), the head's parts from its directory, and
the node on this host if there is one (its scheduler and shared-memory store). A driver on
a host without a node submits to the global scheduler and reads and writes objects in the
head's store over the data plane. When the head restarts at the same address, the driver
finds its new parts (``HeadWatch``) and sends there from now on.
"""

from __future__ import annotations

import atexit
import os
import time
from typing import Any

from babyray import auth, config, log
from babyray.api.core import CoreClient
from babyray.api.driver_transport import DriverTransport
from babyray.api.head_watch import HeadWatch
from babyray.api.object_ref import owner_ended
from babyray.cluster import (
    HeadHandle,
    default_resources,
    free_port,
    join_as_driver,
    object_store_size,
    start_head,
    stop_system,
)
from babyray.ids import WorkerID, random_hex
from babyray.protocol import cluster as cm
from babyray.session import kill_session_processes, new_session_dir, node_output, unlink_session_segments

CONNECT_TIMEOUT = 30.0
STORE_STOP_WAIT = 0.5  # seconds the store has to spill its files and close its servers at shutdown


__all__ = ["DriverRuntime", "free_port", "resolve_address"]


def environment_address() -> str | None:
    """The cluster address the environment names: BABYRAY_ADDRESS, else Ray's RAY_ADDRESS."""
    return os.environ.get("BABYRAY_ADDRESS") or os.environ.get("RAY_ADDRESS") or None


def resolve_address(address: str | None) -> str | None:
    """``"auto"`` (or no address with BABYRAY_ADDRESS or RAY_ADDRESS set) -> the environment's address.

    Raises:
        ConnectionError: ``"auto"`` without an address in the environment.
        ValueError: an address that is not HOST:PORT.
    """
    if address is None:
        address = environment_address()
        if address is None:
            return None
    if address == "auto":
        address = environment_address()
        if not address:
            raise ConnectionError(
                "init(address='auto') needs a running cluster: set BABYRAY_ADDRESS=HOST:PORT "
                "(printed by `babyray start --head`)"
            )
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"bad cluster address {address!r}: expected HOST:PORT, e.g. 192.0.2.1:1900")
    return address


class DriverRuntime:
    """Everything a driver holds while connected: the cluster handle, transport and core."""

    is_driver = True

    def __init__(
        self, head: HeadHandle, owns_cluster: bool, owns_admin: bool = False, remote_store_io: bool = False
    ) -> None:
        self.head = head
        self.owns_cluster = owns_cluster
        self.owns_admin = owns_admin
        self.session_dir = head.session_dir
        self.transport = DriverTransport(head.system)
        self.worker_id = WorkerID(f"driver-{random_hex(4)}")
        registered = self.transport.register(head.gcs, os.getpid(), self.worker_id, CONNECT_TIMEOUT)
        self.job_id = registered.job_id
        self.core = CoreClient(
            self.transport,
            self.worker_id,
            registered.inbox,
            head.node_id,
            head.scheduler,
            head.store,
            head.gcs,
            self.job_id,
        )
        self.core.remote_store_io = remote_store_io
        self.transport.start(self._on_message)
        self.log = log.get_logger("driver")
        self.cluster: cm.ClusterInfo | None = None  # the head's parts, for a driver that joined
        self.node_ip = head.node_ip
        self.watch: HeadWatch | None = None
        self.runtime_env: dict = {}  # the job's (init(runtime_env=...)), packages uploaded
        self.namespace = ""  # the job's (init(namespace=...)), else an anonymous one
        atexit.register(self.shutdown)
        self._closed = False

    @property
    def gcs(self) -> Any:
        return self.core.gcs

    @property
    def node_id(self) -> str:
        return self.core.node_id

    @property
    def gcs_address(self) -> str:
        """The head admin's HOST:PORT, what Ray calls the GCS address (``init(address=)``)."""
        return self.head.head_address or f"{self.head.node_ip}:{self.head.port}"

    def _on_message(self, msg: Any) -> None:
        if not self.core.handle(msg):
            self.log.warning("driver_message_unhandled", message_type=type(msg).__name__)

    @classmethod
    def start_local(
        cls,
        num_cpus: int | None,
        num_gpus: int | None,
        resources: dict | None,
        object_store_memory: int | None,
        settings: dict,
        log_to_driver: bool = True,
    ) -> "DriverRuntime":
        """Start a private cluster tied to this driver; what its tasks and actors print goes to
        this process's stdout and stderr, or with ``log_to_driver=False`` to the session's
        ``logs/node.out``."""
        token = auth.generate_token() if auth.enabled_by(settings.pop("auth_mode", None)) else None
        session_dir = new_session_dir(settings.pop("temp_dir", None))
        log.configure(os.path.join(session_dir, "logs"), "driver")
        started = time.monotonic()
        head = start_head(
            session_dir,
            "127.0.0.1",
            free_port(),
            default_resources(num_cpus, num_gpus, resources),
            object_store_size(object_store_memory),
            settings=settings,
            token=token,
            dies_with_starter=True,
            output=None if log_to_driver else node_output(session_dir),
        )
        runtime = cls(head, owns_cluster=True)
        runtime.core.router.locality = config.Settings(settings).scheduling_policy == "locality"
        runtime.core.io.inline_threshold = config.Settings(settings).inline_threshold
        runtime.log.info(
            "driver_started_local_cluster",
            seconds=round(time.monotonic() - started, 4),
            session_dir=session_dir,
        )
        return runtime

    @classmethod
    def connect(cls, address: str, settings: dict) -> "DriverRuntime":
        """Join the running cluster whose head admin is at ``address`` (HOST:PORT)."""
        token = _token_for(address, settings.pop("auth_mode", None), settings.get("temp_dir"))
        session_dir = new_session_dir(settings.pop("temp_dir", None))
        log.configure(os.path.join(session_dir, "logs"), "driver")
        started = time.monotonic()
        system, info, node_ip = join_as_driver(session_dir, address, timeout=CONNECT_TIMEOUT, token=token)
        try:
            reply = system.ask(info.gcs, cm.GetNodes("driver-nodes"), CONNECT_TIMEOUT)
            head, local = _driver_parts(
                system,
                session_dir,
                address,
                node_ip,
                info,
                reply.nodes if isinstance(reply, cm.Nodes) else (),
            )
            runtime = cls(head, owns_cluster=False, owns_admin=True, remote_store_io=not local)
        except BaseException:
            stop_system(system)
            raise
        runtime.node_ip, runtime.cluster = node_ip, info
        runtime.core.io.inline_threshold = config.Settings(settings).inline_threshold
        runtime.core.router.locality = info.scheduling_policy == "locality"
        runtime.core.router.update(reply.nodes if isinstance(reply, cm.Nodes) else ())
        runtime.transport.watch_head(_parts(head))
        runtime.watch = HeadWatch(
            system, address, runtime.job_id, lambda: runtime.core.gcs, runtime._follow_head
        )
        runtime.log.info(
            "driver_joined_cluster",
            address=address,
            node=head.node_id,
            local_node=local,
            seconds=round(time.monotonic() - started, 4),
            session_dir=session_dir,
        )
        return runtime

    def _follow_head(self, info: cm.ClusterInfo, unreachable_for: float) -> None:
        """Send to a restarted head's parts from now on: register again (same job), send the
        unanswered requests again and the tasks in flight that no alive node holds."""
        registered = self.transport.register_again(
            info.gcs, os.getpid(), self.job_id, self.worker_id, CONNECT_TIMEOUT
        )
        assert self.cluster is not None, "only a driver that joined a cluster follows its head"
        old, old_head_node = self.head, self.cluster.head_node_id
        head, local = _driver_parts(
            old.system, self.session_dir, old.head_address, self.node_ip, info, registered.nodes
        )
        resent = self.transport.retarget(list(zip(_parts(old), _parts(head), strict=True)))
        self.head, self.cluster = head, info
        self.core.retarget(head.gcs, head.scheduler, head.store, head.node_id, remote_store_io=not local)
        resubmitted = self.core.resubmit_lost_with_head(
            old_head_node, {n.node_id for n in registered.nodes if n.alive}
        )
        self.log.warning(
            "driver_reconnected",
            address=head.head_address,
            gcs=str(head.gcs),
            job_id=self.job_id,
            node=head.node_id,
            old_node=old.node_id,
            unreachable_seconds=round(unreachable_for, 3),
            requests_resent=resent,
            tasks_resubmitted=resubmitted,
        )

    def nodes(self) -> tuple:
        return self.core.request(self.gcs, lambda r: cm.GetNodes(r)).nodes

    def shutdown(self) -> None:
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self.shutdown)
        if self.watch is not None:
            self.watch.close()
        self.transport.send(self.gcs, cm.UnregisterDriver(self.job_id))  # state queries stop asking it
        if self.core.flusher is not None:
            self.core.flusher.close()  # the last task events and metric values
        self.transport.close()
        self.core.close()
        owner_ended(self.worker_id)
        if self.owns_cluster:
            store_stopped = None
            try:
                store_stopped = self.head.system.ask(self.head.store, cm.Shutdown(), STORE_STOP_WAIT)
            finally:
                # A store that cannot answer holds the admin too: do not wait for its confirmation.
                stop_system(self.head.system, confirm=store_stopped is not None)
                kill_session_processes(self.session_dir)
                unlink_session_segments(self.session_dir)
        elif self.owns_admin:
            stop_system(self.head.system)
        self.log.info("driver_stopped")


def _token_for(address: str, auth_mode: str | None, temp_dir: str | None) -> str | None:
    """The token a driver proves to the cluster at ``address``: the environment's, else that of
    a node started on this host in that cluster (as Ray reads its default token file).

    Raises:
        ConnectionError: authentication is on and no token is found.
    """
    if not auth.enabled_by(auth_mode):
        return None
    from babyray.cli.node_records import recorded_token_file

    token = auth.token_from_environment()
    if token is None and (path := recorded_token_file(address, temp_dir)):
        token = auth.read_token_file(path)
    if token is None:
        raise ConnectionError(
            f"no auth token for the cluster at {address}: set BABYRAY_AUTH_TOKEN_PATH to a copy "
            "of its token file (`babyray get-auth-token` on the head prints the token)"
        )
    return token


def _driver_parts(
    system: Any, session_dir: str, address: str, node_ip: str, info: cm.ClusterInfo, nodes: tuple
) -> tuple[HeadHandle, bool]:
    """The parts a driver on ``node_ip`` sends to, and whether a node runs on its host.

    A node on its host (the head's first) gives its scheduler and shared-memory store; with
    none, the global scheduler places tasks and the head's store holds objects.
    """
    local = [n for n in nodes if n.alive and n.address.rpartition(":")[0] == node_ip]
    local.sort(key=lambda n: n.node_id != info.head_node_id)
    host, _, port = address.rpartition(":")
    if local:
        node = local[0]
        return HeadHandle(
            system,
            session_dir,
            host,
            int(port),
            node.node_id,
            info.gcs,
            info.global_scheduler,
            node.scheduler,
            node.store,
            "",
            address,
        ), True
    return HeadHandle(
        system,
        session_dir,
        host,
        int(port),
        info.head_node_id,
        info.gcs,
        info.global_scheduler,
        info.global_scheduler,
        info.head_store,
        "",
        address,
    ), False


def _parts(head: HeadHandle) -> list[Any]:
    """The addresses a driver sends to that change when the head restarts."""
    return [head.gcs, head.global_scheduler, head.scheduler, head.store]
