"""The driver's runtime: made by ``init()``, destroyed by ``shutdown()``.

For a bare ``init()`` it starts a private single-node cluster (a Thespian admin on a free
127.0.0.1 port with every part) and owns it: ``shutdown()`` or interpreter exit stops the
admin, every process of the session and the shared-memory arena.

For ``init(address=...)`` it joins a running cluster: a small admin of the driver's own on
this host's address (in the head's convention), the head's parts from its directory, and
the node on this host if there is one (its scheduler and shared-memory store). A driver on
a host without a node submits to the global scheduler and reads and writes objects in the
head's store over the data plane.
"""
from __future__ import annotations

import atexit
import glob
import os
import time
from typing import Any

from babyray import log
from babyray.actors import messages as m
from babyray.api.core import CoreClient
from babyray.api.driver_transport import DriverTransport
from babyray.cluster import (HeadHandle, default_resources, free_port, join_as_driver, object_store_size,
                             start_head)
from babyray.ids import random_hex
from babyray.session import kill_session_processes, new_session_dir

CONNECT_TIMEOUT = 30.0


__all__ = ["DriverRuntime", "free_port", "resolve_address"]


def resolve_address(address: str | None) -> str | None:
    """``"auto"`` (or no address with BABYRAY_ADDRESS set) -> the environment's address.

    Raises:
        ConnectionError: ``"auto"`` without BABYRAY_ADDRESS.
        ValueError: an address that is not HOST:PORT.
    """
    if address is None:
        return os.environ.get("BABYRAY_ADDRESS") or None
    if address == "auto":
        address = os.environ.get("BABYRAY_ADDRESS")
        if not address:
            raise ConnectionError("init(address='auto') needs a running cluster: set BABYRAY_ADDRESS=HOST:PORT "
                                  "(printed by `babyray start --head`)")
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"bad cluster address {address!r}: expected HOST:PORT, e.g. 192.0.2.1:1900")
    return address


class DriverRuntime:
    """Everything a driver holds while connected: the cluster handle, transport and core."""

    is_driver = True

    def __init__(self, head: HeadHandle, owns_cluster: bool, owns_admin: bool = False,
                 remote_store_io: bool = False) -> None:
        self.head = head
        self.owns_cluster = owns_cluster
        self.owns_admin = owns_admin
        self.session_dir = head.session_dir
        self.transport = DriverTransport(head.system)
        registered = self.transport.register(head.gcs, os.getpid(), CONNECT_TIMEOUT)
        self.job_id = registered.job_id
        self.node_id = head.node_id
        self.worker_id = f"driver-{random_hex(4)}"
        self.gcs = head.gcs
        self.core = CoreClient(self.transport, self.worker_id, registered.inbox, head.node_id,
                               head.scheduler, head.store, head.gcs, self.job_id)
        self.core.remote_store_io = remote_store_io
        self.transport.start(self._on_message)
        self.log = log.get_logger("driver")
        atexit.register(self.shutdown)
        self._closed = False

    def _on_message(self, msg: Any) -> None:
        if not self.core.handle(msg):
            self.log.warning("driver_message_unhandled", message_type=type(msg).__name__)

    @classmethod
    def start_local(cls, num_cpus: int | None, num_gpus: int | None, resources: dict | None,
                    object_store_memory: int | None, settings: dict) -> "DriverRuntime":
        session_dir = new_session_dir(settings.pop("temp_dir", None))
        log.configure(os.path.join(session_dir, "logs"), "driver")
        started = time.monotonic()
        head = start_head(session_dir, "127.0.0.1", free_port(), default_resources(num_cpus, num_gpus, resources),
                          object_store_size(object_store_memory), watch_pid=os.getpid(), settings=settings)
        runtime = cls(head, owns_cluster=True)
        runtime.log.info("driver_started_local_cluster", seconds=round(time.monotonic() - started, 4),
                         session_dir=session_dir)
        return runtime

    @classmethod
    def connect(cls, address: str, settings: dict) -> "DriverRuntime":
        """Join the running cluster whose head admin is at ``address`` (HOST:PORT)."""
        session_dir = new_session_dir(settings.pop("temp_dir", None))
        log.configure(os.path.join(session_dir, "logs"), "driver")
        started = time.monotonic()
        system, info, node_ip = join_as_driver(session_dir, address, timeout=CONNECT_TIMEOUT)
        try:
            reply = system.ask(info.gcs, m.GetNodes("driver-nodes"), CONNECT_TIMEOUT)
            nodes = reply.nodes if isinstance(reply, m.Nodes) else ()
            local = [n for n in nodes if n.alive and n.address.rpartition(":")[0] == node_ip]
            local.sort(key=lambda n: n.node_id != info.head_node_id)
            host, _, port = address.rpartition(":")
            if local:
                node = local[0]
                head = HeadHandle(system, session_dir, host, int(port), node.node_id, info.gcs,
                                  info.global_scheduler, node.scheduler, node.store, "", address)
            else:  # no node on this host: the global scheduler places, the head's store holds
                head = HeadHandle(system, session_dir, host, int(port), info.head_node_id, info.gcs,
                                  info.global_scheduler, info.global_scheduler, info.head_store, "", address)
            runtime = cls(head, owns_cluster=False, owns_admin=True, remote_store_io=not local)
        except BaseException:
            system.shutdown()
            raise
        runtime.node_ip = node_ip
        runtime.log.info("driver_joined_cluster", address=address, node=head.node_id, local_node=bool(local),
                         seconds=round(time.monotonic() - started, 4), session_dir=session_dir)
        return runtime

    def nodes(self) -> tuple:
        return self.core.request(self.gcs, lambda r: m.GetNodes(r)).nodes

    def shutdown(self) -> None:
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self.shutdown)
        self.transport.send(self.gcs, m.UnregisterDriver(self.job_id))  # state queries stop asking it
        self.core.task_events.close()
        self.transport.close()
        if self.owns_cluster:
            try:
                self.head.system.ask(self.head.store, m.Shutdown(), 5)
            finally:
                self.head.system.shutdown()
                kill_session_processes(self.session_dir)
                _unlink_arenas(self.head.arena_name)
        elif self.owns_admin:
            self.head.system.shutdown()
        self.log.info("driver_stopped")


def _unlink_arenas(name: str) -> None:
    for path in glob.glob(f"/dev/shm/{name}*"):
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
