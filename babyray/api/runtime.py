"""The driver's runtime: made by ``init()``, destroyed by ``shutdown()``.

For a bare ``init()`` it starts a private single-node cluster (a Thespian admin on a free
127.0.0.1 port with every part) and owns it: ``shutdown()`` or interpreter exit stops the
admin, every process of the session and the shared-memory arena.
"""
from __future__ import annotations

import atexit
import glob
import os
import socket
import time
from typing import Any

from babyray import config, log
from babyray.actors import messages as m
from babyray.api.core import CoreClient
from babyray.api.driver_transport import DriverTransport
from babyray.cluster import HeadHandle, default_resources, object_store_size, start_head
from babyray.ids import random_hex
from babyray.session import kill_session_processes, new_session_dir

CONNECT_TIMEOUT = 30.0


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class DriverRuntime:
    """Everything a driver holds while connected: the cluster handle, transport and core."""

    is_driver = True

    def __init__(self, head: HeadHandle, owns_cluster: bool) -> None:
        self.head = head
        self.owns_cluster = owns_cluster
        self.session_dir = head.session_dir
        self.transport = DriverTransport(head.system)
        registered = self.transport.register(head.gcs, os.getpid(), CONNECT_TIMEOUT)
        self.job_id = registered.job_id
        self.node_id = head.node_id
        self.worker_id = f"driver-{random_hex(4)}"
        self.gcs = head.gcs
        self.core = CoreClient(self.transport, self.worker_id, registered.inbox, head.node_id,
                               head.scheduler, head.store, head.gcs, self.job_id)
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

    def nodes(self) -> tuple:
        return self.core.request(self.gcs, lambda r: m.GetNodes(r)).nodes

    def shutdown(self) -> None:
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self.shutdown)
        self.transport.close()
        if self.owns_cluster:
            try:
                self.head.system.ask(self.head.store, m.Shutdown(), 5)
            finally:
                self.head.system.shutdown()
                kill_session_processes(self.session_dir)
                _unlink_arenas(self.head.arena_name)
        self.log.info("driver_stopped")


def _unlink_arenas(name: str) -> None:
    for path in glob.glob(f"/dev/shm/{name}*"):
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
