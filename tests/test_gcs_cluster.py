"""The GCS store through a running cluster, on SQLite and on the real PostgreSQL.

Each test starts a private cluster with ``init(gcs_url=..., gcs_table_prefix=...)`` (a
unique prefix per test, dropped afterwards), drives it through the public API and reads
the tables both through the GCS actor (the table protocol) and straight from the store.
"""
from __future__ import annotations

import contextlib
import glob
import json
import os
import random
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import babyray as ray
from babyray.actors.messages import GetNodes
from babyray.actors import messages as m
from babyray.api import context
from babyray.cluster import ClusterStartError
from babyray.gcs import messages as gm
from babyray.gcs.store import GcsStore
from babyray.ids import task_id_of
from babyray.session import session_pids
from conftest import _alive, assert_session_clean
from test_gcs_store import PASSWORD, PG_URL, TcpProxy, drop_tables

FAST_FLUSH = 0.2  # seconds between flush passes in these tests


@ray.remote
def double(x: int) -> int:
    return 2 * x


@ray.remote
def fail() -> None:
    raise ValueError("boom")


class Gcs:
    """Talks to the running cluster's GCS actor from the test (a private Thespian context)."""

    def ask(self, msg: Any, timeout: float = 15.0) -> Any:
        runtime = context.runtime()
        with runtime.head.system.private() as ctx:
            reply = ctx.ask(runtime.gcs, msg, timeout)
        assert reply is not None, f"no reply from the GCS to {msg!r}"
        return reply

    def tell(self, msg: Any) -> None:
        runtime = context.runtime()
        with runtime.head.system.private() as ctx:
            ctx.tell(runtime.gcs, msg)

    def stats(self) -> gm.GcsStats:
        return self.ask(gm.GetGcsStats("stats"))

    def flush(self, timeout: float = 10.0) -> gm.GcsFlushed:
        core = context.runtime().core
        core.task_events.flush()  # owners buffer task events; a request on the same path orders them
        core.request(core.gcs, GetNodes)
        return self.ask(gm.FlushGcs("flush", timeout), timeout + 5)

    def entries(self, table: str, keys: list[str]) -> dict[str, Any]:
        reply = self.ask(gm.GetTableEntries("get", table, tuple(keys)))
        assert reply.error is None, reply.error
        return dict(reply.entries)

    def list(self, table: str, where: dict | None = None) -> dict[str, Any]:
        reply = self.ask(gm.ListTable("list", table, where))
        assert reply.error is None, reply.error
        return dict(reply.entries)


def proxy_port() -> int:
    """A free port below the ephemeral range: a client retrying a closed ephemeral port can
    connect to itself (TCP simultaneous open) and keep the port from the restarted proxy."""
    for _ in range(100):
        port = random.randint(20000, 30000)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port below the ephemeral range")


def wait_until(predicate: Callable[[], bool], timeout: float = 15.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"{what} not reached within {timeout}s"
        time.sleep(0.05)


class Backend:
    def __init__(self, kind: str, url: str, prefix: str, tmp_path: Path) -> None:
        self.kind, self.url, self.prefix, self.tmp_path = kind, url, prefix, tmp_path

    def open(self, url: str | None = None) -> GcsStore:
        return GcsStore(url or self.url, prefix=self.prefix)

    @contextlib.contextmanager
    def cluster(self, url: str | None = None, **settings: Any) -> Iterator[Gcs]:
        """A private 2-CPU cluster whose GCS uses this store; checked for leaks when it stops."""
        settings.setdefault("gcs_flush_period", FAST_FLUSH)
        info = ray.init(num_cpus=2, temp_dir=str(self.tmp_path), object_store_memory=64 * 1024 * 1024,
                        gcs_url=url or self.url, gcs_table_prefix=self.prefix, **settings)
        try:
            yield Gcs()
        finally:
            ray.shutdown()
        assert_session_clean(info["session_dir"])


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    prefix = f"t{uuid.uuid4().hex[:10]}_"
    url = f"sqlite:///{tmp_path}/gcs.sqlite" if request.param == "sqlite" else PG_URL
    try:
        yield Backend(request.param, url, prefix, tmp_path)
    finally:
        if request.param == "postgresql":
            drop_tables(PG_URL, prefix)


@pytest.fixture
def pg_backend(tmp_path: Path) -> Iterator[Backend]:
    prefix = f"t{uuid.uuid4().hex[:10]}_"
    try:
        yield Backend("postgresql", PG_URL, prefix, tmp_path)
    finally:
        drop_tables(PG_URL, prefix)


def gcs_log_events(event: str) -> list[dict]:
    session_dir = context.runtime().session_dir
    found = []
    for path in glob.glob(os.path.join(session_dir, "logs", "gcs-*.jsonl")):
        with open(path) as f:
            found += [line for line in map(json.loads, f) if line.get("event") == event]
    return found


def test_every_table_round_trips_through_a_running_cluster(backend: Backend) -> None:
    with backend.cluster(gcs_flushing=False) as gcs:
        refs = [double.remote(i) for i in range(5)]
        assert ray.get(refs) == [0, 2, 4, 6, 8]
        big = ray.put(b"x" * 300_000)  # above the inline threshold: lands in the node's store
        gcs.tell(gm.UpdateTableEntries("actors", (("a1", {"state": "ALIVE", "name": "counter"}),)))
        wait_until(lambda: gcs.entries("objects", [big.id])[big.id] is not None, what="object location")
        assert gcs.flush().durable
        stats = gcs.stats()
        assert stats.store_healthy and stats.pending_writes == 0 and not stats.flushing
        assert stats.in_memory["tasks"] == 5  # flushing off: every entry stays in memory
        task_ids = [task_id_of(ref.id) for ref in refs]
        node_id = context.runtime().node_id

        store = backend.open()
        try:
            tasks = store.get_many("tasks", task_ids)
            assert {t["state"] for t in tasks.values()} == {"finished"} and len(tasks) == 5
            assert all(t["name"] == "double" and t["spec"].function_name == "double" for t in tasks.values())
            function_id = next(iter(tasks.values()))["function_id"]
            assert store.get("functions", function_id)["name"] == "double"
            assert store.get("objects", big.id)["locations"] == {node_id}
            assert store.get("actors", "a1") == {"state": "ALIVE", "name": "counter"}
            assert store.get("nodes", node_id)["alive"] is True
        finally:
            store.close()
        assert gcs.entries("tasks", task_ids[:1])[task_ids[0]]["return_ids"] == (refs[0].id,)
        assert gcs.list("actors", {"name": "counter"}) == {"a1": {"state": "ALIVE", "name": "counter"}}


def test_failed_task_is_recorded_as_failed_lineage(backend: Backend) -> None:
    with backend.cluster() as gcs:
        ref = fail.remote()
        with pytest.raises(ValueError):
            ray.get(ref)
        wait_until(lambda: (gcs.entries("tasks", [task_id_of(ref.id)])[task_id_of(ref.id)] or {})
                   .get("state") == "failed", what="failed state")


def test_evicted_entries_are_faulted_back_on_a_miss(backend: Backend) -> None:
    with backend.cluster() as gcs:
        refs = [double.remote(i) for i in range(20)]
        assert ray.get(refs) == [2 * i for i in range(20)]
        task_ids = [task_id_of(ref.id) for ref in refs]
        wait_until(lambda: gcs.flush().evicted == 0 and gcs.stats().in_memory["tasks"] == 0,
                   what="finished tasks evicted")
        stats = gcs.stats()
        assert stats.in_memory["functions"] == 0 and stats.evicted["tasks"] >= 20
        assert stats.faults["tasks"] == 0

        lineage = gcs.entries("tasks", task_ids)  # a miss: read back from the store
        assert all(lineage[t]["state"] == "finished" and lineage[t]["spec"].task_id == t for t in task_ids)
        assert gcs.stats().faults["tasks"] == 20
        function_id = lineage[task_ids[0]]["function_id"]
        blob = gcs.ask(m.GetFunction("fn", function_id))
        assert isinstance(blob, m.FunctionBlob) and blob.blob  # a flushed function still resolves
        assert ray.get(double.remote(21)) == 42


def test_a_restarted_gcs_recovers_functions_actors_and_lineage(backend: Backend) -> None:
    with backend.cluster() as gcs:
        refs = [double.remote(i) for i in range(10)]
        ray.get(refs)
        gcs.tell(gm.UpdateTableEntries("actors", (("a1", {"state": "ALIVE", "name": "keeper"}),)))
        wait_until(lambda: gcs.entries("actors", ["a1"])["a1"] is not None, what="actor entry")
        assert gcs.flush().durable
        old_node = context.runtime().node_id
        task_ids = [task_id_of(ref.id) for ref in refs]
    with backend.cluster() as gcs:
        stats = gcs.stats()
        assert stats.recovered and stats.in_memory["actors"] == 1
        assert gcs.list("actors", {"name": "keeper"}) == {"a1": {"state": "ALIVE", "name": "keeper"}}
        lineage = gcs.entries("tasks", task_ids)
        assert {record["state"] for record in lineage.values()} == {"finished"}
        function_id = lineage[task_ids[0]]["function_id"]
        assert gcs.entries("functions", [function_id])[function_id]["name"] == "double"
        nodes = {n["NodeID"]: n["Alive"] for n in ray.nodes()}
        assert nodes[old_node] is False and nodes[context.runtime().node_id] is True
        assert ray.get(double.remote(5)) == 10


def test_a_store_outage_keeps_the_cluster_serving_and_loses_nothing(pg_backend: Backend) -> None:
    proxy = TcpProxy(proxy_port(), ("127.0.0.1", 5432))
    url = f"postgresql+psycopg2://postgres:{PASSWORD}@127.0.0.1:{proxy.port}/test"
    try:
        with pg_backend.cluster(url=url) as gcs:
            proxy.start()  # only now: processes forked by init() would inherit its listening socket
            assert ray.get([double.remote(i) for i in range(5)]) == [0, 2, 4, 6, 8]
            wait_until(lambda: gcs.flush(timeout=5).durable and gcs.stats().recovered, what="store reachable")
            proxy.stop()
            during = [double.remote(i) for i in range(30)]
            assert ray.get(during, timeout=20) == [2 * i for i in range(30)]  # still serving
            wait_until(lambda: not gcs.stats().store_healthy, what="outage noticed")
            assert gcs.stats().pending_writes > 0
            assert not gcs.flush(timeout=0.3).durable
            proxy.start()
            wait_until(lambda: gcs.flush(timeout=5).durable, timeout=20, what="writes after the outage")
            assert gcs.stats().store_healthy
            errors = gcs_log_events("gcs_store_unavailable")
            assert errors and f":***@127.0.0.1:{proxy.port}/test" in errors[0]["url"]
            assert gcs_log_events("gcs_store_recovered")
            session_dir = context.runtime().session_dir
        for path in glob.glob(os.path.join(session_dir, "logs", "*.jsonl")):
            assert PASSWORD not in Path(path).read_text(), f"password leaked into {path}"
        store = pg_backend.open()
        try:
            stored = store.get_many("tasks", [task_id_of(ref.id) for ref in during])
        finally:
            store.close()
        assert len(stored) == 30 and {r["state"] for r in stored.values()} == {"finished"}
    finally:
        proxy.stop()


def test_a_store_unreachable_at_start_is_written_once_it_appears(pg_backend: Backend) -> None:
    proxy = TcpProxy(proxy_port(), ("127.0.0.1", 5432))
    url = f"postgresql+psycopg2://postgres@127.0.0.1:{proxy.port}/test"
    try:
        with pg_backend.cluster(url=url) as gcs:
            refs = [double.remote(i) for i in range(10)]
            assert ray.get(refs, timeout=20) == [2 * i for i in range(10)]
            assert not gcs.stats().recovered
            assert gcs_log_events("gcs_store_unreachable_at_start")
            proxy.start()
            wait_until(lambda: gcs.flush(timeout=5).durable and gcs.stats().recovered, timeout=20,
                       what="store reachable")
        store = pg_backend.open()
        try:
            assert len(store.get_many("tasks", [task_id_of(ref.id) for ref in refs])) == 10
        finally:
            store.close()
    finally:
        proxy.stop()


def test_an_unsupported_store_url_fails_init_with_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ClusterStartError, match="unsupported GCS store backend 'mysql'"):
        ray.init(num_cpus=1, temp_dir=str(tmp_path), gcs_url="mysql://user:pw@127.0.0.1/x")
    assert not ray.is_initialized()
    for session_dir in glob.glob(os.path.join(tmp_path, "session_*")):  # the admin stops its parts
        wait_until(lambda: not [pid for pid in session_pids(session_dir) if _alive(pid)], timeout=10,
                   what="the failed cluster's processes gone")
        assert_session_clean(session_dir)
