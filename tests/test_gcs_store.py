"""Tests of the GCS store and its background writer, on SQLite and on the real PostgreSQL."""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy
from structlog.testing import capture_logs

from babyray.gcs import store as store_module
from babyray.gcs.store import (
    TABLES,
    GcsSchemaVersionError,
    GcsStore,
    GcsStoreUnavailable,
    TableName,
    redact_url,
)
from babyray.gcs.writer import StoreWriter

PG_URL = os.environ.get("BABYRAY_TEST_PG_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test")
PASSWORD = "s3cret-pw"  # PostgreSQL here trusts local connections, so any password is accepted


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


class TcpProxy:
    """Forwards a local port to PostgreSQL; stop() drops every connection, like a crashed server."""

    def __init__(self, port: int, target: tuple[str, int]) -> None:
        self.port, self.target = port, target
        self._stop = threading.Event()
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        self._stop.clear()
        listener = socket.create_server(("127.0.0.1", self.port))
        listener.settimeout(0.02)
        self._spawn(self._accept, listener)

    def stop(self) -> None:
        self._stop.set()
        for sock in self._sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for thread in self._threads:
            thread.join()
        for sock in self._sockets:
            sock.close()
        self._sockets, self._threads = [], []

    def _spawn(self, target: Callable[..., None], *args: socket.socket) -> None:
        thread = threading.Thread(target=target, args=args, name="test-tcp-proxy")
        self._threads.append(thread)
        thread.start()

    def _accept(self, listener: socket.socket) -> None:
        with listener:
            while not self._stop.is_set():
                try:
                    client, _ = listener.accept()
                except TimeoutError:
                    continue
                client.settimeout(None)
                upstream = socket.create_connection(self.target)
                self._sockets += [client, upstream]
                self._spawn(self._pump, client, upstream)
                self._spawn(self._pump, upstream, client)

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        try:
            sink.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


@dataclass
class Backend:
    """One database for one test: a fresh table prefix, and everything opened on it closed after."""

    kind: str
    url: str
    tmp_path: Path
    prefix: str = field(default_factory=lambda: f"t{uuid.uuid4().hex[:12]}_")
    stores: list[GcsStore] = field(default_factory=list)
    writers: list[StoreWriter] = field(default_factory=list)
    proxies: list[TcpProxy] = field(default_factory=list)

    def open(self, url: str | None = None) -> GcsStore:
        store = GcsStore(url or self.url, prefix=self.prefix)
        self.stores.append(store)
        return store

    def unreachable(self) -> tuple[str, Callable[[], None]]:
        """Return a URL of this database that cannot be opened yet, and a function to open it."""
        if self.kind == "sqlite":
            directory = self.tmp_path / "not-yet"
            return f"sqlite:///{directory}/gcs.db", directory.mkdir
        target = sqlalchemy.make_url(self.url)
        proxy = TcpProxy(free_port(), (target.host or "127.0.0.1", target.port or 5432))
        self.proxies.append(proxy)
        url = target.set(password=PASSWORD, port=proxy.port).render_as_string(hide_password=False)
        return url, proxy.start

    def writer(self, store: GcsStore | str, *args: Any, **kwargs: Any) -> StoreWriter:
        """Start a StoreWriter on an open store, or on a factory of stores at this URL."""
        target = store if isinstance(store, GcsStore) else lambda: GcsStore(store, prefix=self.prefix)
        writer = StoreWriter(target, *args, **kwargs)
        self.writers.append(writer)
        return writer


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    url = f"sqlite:///{tmp_path}/gcs.db" if request.param == "sqlite" else PG_URL
    backend = Backend(request.param, url, tmp_path)
    try:
        yield backend
    finally:
        for writer in backend.writers:
            writer.close(timeout=1)
        for store in backend.stores:
            store.close()
        for proxy in backend.proxies:
            proxy.stop()
        if backend.kind == "postgresql":
            drop_tables(backend.url, backend.prefix)


def drop_tables(url: str, prefix: str) -> None:
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.begin() as conn:
            for name in sqlalchemy.inspect(conn).get_table_names():
                if name.startswith(prefix):
                    conn.execute(sqlalchemy.text(f'DROP TABLE "{name}"'))
        with engine.connect() as conn:
            assert not [n for n in sqlalchemy.inspect(conn).get_table_names() if n.startswith(prefix)]
    finally:
        engine.dispose()


@pytest.fixture(autouse=True)
def no_leaked_threads() -> Iterator[None]:
    before = set(threading.enumerate())
    yield
    leaked = [t.name for t in set(threading.enumerate()) - before if t.is_alive()]
    assert not leaked, f"threads left running: {leaked}"


def test_every_table_round_trips_a_record(backend: Backend) -> None:
    store = backend.open()
    records = {
        table: {"id": f"{table}-1", "payload": b"\x00\xff" * 10, "nested": {"n": [1, 2]}} for table in TABLES
    }
    store.put_many([(table, f"{table}-1", record) for table, record in records.items()])
    for table, record in records.items():
        assert store.get(table, f"{table}-1") == record
        assert store.get(table, "missing") is None


def test_get_many_returns_only_the_stored_keys(backend: Backend) -> None:
    store = backend.open()
    store.put_many([("objects", f"o{i}", {"i": i}) for i in range(2500)])
    found = store.get_many("objects", [f"o{i}" for i in range(0, 3000, 2)])
    assert found == {f"o{i}": {"i": i} for i in range(0, 2500, 2)}


def test_put_overwrites_an_existing_key(backend: Backend) -> None:
    store = backend.open()
    store.put_many([("tasks", "t1", {"state": "PENDING"})])
    store.put_many([("tasks", "t1", {"state": "FINISHED"})])
    assert store.get("tasks", "t1") == {"state": "FINISHED"}
    assert store.scan("tasks", {"state": "PENDING"}) == []


def test_put_many_keeps_the_last_record_of_a_key_given_twice(backend: Backend) -> None:
    store = backend.open()
    store.put_many([("tasks", "t1", {"v": 1}), ("tasks", "t1", {"v": 2}), ("actors", "t1", {"v": 3})])
    assert store.get("tasks", "t1") == {"v": 2}
    assert store.get("actors", "t1") == {"v": 3}


def test_delete_removes_only_the_given_keys(backend: Backend) -> None:
    store = backend.open()
    store.put_many([("objects", "a", {}), ("objects", "b", {}), ("nodes", "a", {})])
    store.delete_many([("objects", "a"), ("objects", "never-stored")])
    assert store.get_many("objects", ["a", "b"]) == {"b": {}}
    assert store.get("nodes", "a") == {}


def test_scan_filters_on_indexed_columns_and_limits(backend: Backend) -> None:
    store = backend.open()
    store.put_many(
        [
            ("actors", "a1", {"state": "ALIVE", "name": "counter", "updated_at": 3.0}),
            ("actors", "a2", {"state": "ALIVE", "name": None, "updated_at": 1.0}),
            ("actors", "a3", {"state": "DEAD", "name": "counter", "updated_at": 2.0}),
        ]
    )
    assert [r["updated_at"] for r in store.scan("actors")] == [1.0, 2.0, 3.0]
    assert [r["updated_at"] for r in store.scan("actors", {"state": "ALIVE"})] == [1.0, 3.0]
    assert store.scan("actors", {"state": "ALIVE", "name": "counter"}) == [store.get("actors", "a1")]
    assert store.scan("actors", {"name": None}) == [store.get("actors", "a2")]
    assert store.scan("actors", limit=1) == [store.get("actors", "a2")]
    with pytest.raises(ValueError, match="updated_at"):
        store.scan("actors", {"updated_at": "1.0"})


def test_unknown_table_or_non_string_indexed_field_is_rejected(backend: Backend) -> None:
    store = backend.open()
    with pytest.raises(ValueError, match="unknown GCS table 'jobs'"):
        store.put_many([("jobs", "j1", {})])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="state must be a str"):
        store.put_many([("tasks", "t1", {"state": 3})])


def test_opening_a_store_with_another_schema_version_raises(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend.open().close()
    monkeypatch.setattr(store_module, "SCHEMA_VERSION", 2)
    with pytest.raises(GcsSchemaVersionError, match="has schema version 1, this babyray needs 2"):
        backend.open()


def test_reopened_store_recovers_its_rows(backend: Backend) -> None:
    first = backend.open()
    first.put_many([(table, "k", {"table": table}) for table in TABLES])
    first.delete_many([("nodes", "k")])
    first.close()
    second = backend.open()
    assert {table: second.get(table, "k") for table in TABLES} == {
        table: None if table == "nodes" else {"table": table} for table in TABLES
    }


def test_writer_batches_writes_and_reports_them_durable(backend: Backend) -> None:
    reports: list[list[tuple[TableName, str]]] = []
    writer = backend.writer(backend.open(), reports.append, flush_interval=0.05, max_batch=300)
    for i in range(1000):
        writer.enqueue_put("tasks", f"t{i}", {"i": i})
    assert writer.flush(timeout=10)
    assert writer.close()
    durable = [key for report in reports for key in report]
    assert sorted(durable) == sorted(("tasks", f"t{i}") for i in range(1000))
    assert 4 <= len(reports) < 100 and max(len(report) for report in reports) <= 300
    assert writer.pending_count() == 0
    assert len(backend.open().get_many("tasks", [f"t{i}" for i in range(1000)])) == 1000


def test_writer_coalesces_writes_to_a_key_keeping_the_latest(backend: Backend) -> None:
    store = backend.open()
    store.put_many([("objects", "gone", {"v": 0})])
    writer = backend.writer(store)
    record = {"v": 1}
    writer.enqueue_put("objects", "o1", record)
    record["v"] = 99  # enqueue took a snapshot
    writer.enqueue_put("objects", "o2", {"v": 1})
    writer.enqueue_put("objects", "o2", {"v": 2})
    writer.enqueue_put("objects", "o3", {"v": 1})
    writer.enqueue_delete("objects", "o3")
    writer.enqueue_delete("objects", "gone")
    assert writer.close()
    assert store.get_many("objects", ["o1", "o2", "o3", "gone"]) == {"o1": {"v": 1}, "o2": {"v": 2}}
    with pytest.raises(RuntimeError, match="closed"):
        writer.enqueue_put("objects", "late", {})


def test_writer_keeps_entries_while_the_store_is_unreachable_and_writes_them_when_it_returns(
    backend: Backend,
) -> None:
    url, make_reachable = backend.unreachable()
    reports: list[list[tuple[TableName, str]]] = []
    with capture_logs() as logs:
        writer = backend.writer(url, reports.append, flush_interval=0.01)
        writer.enqueue_put("tasks", "t0", {"v": 0})
        wait_until(lambda: not writer.is_healthy())
        for i in range(200):
            writer.enqueue_put("tasks", f"t{i % 50}", {"v": i})
        writer.enqueue_delete("tasks", "t49")
        assert not writer.flush(timeout=0.2)
        assert writer.pending_count() == 51  # t0 in flight, and t0..t49 pending
        make_reachable()
        assert writer.flush(timeout=10)
        assert writer.is_healthy()
        assert writer.close()
    expected = {f"t{i}": {"v": 150 + i} for i in range(49)}
    assert backend.open(url).get_many("tasks", [f"t{i}" for i in range(50)]) == expected
    assert sorted(key for report in reports for key in report) == sorted(
        ("tasks", f"t{i}") for i in range(50)
    )
    events = [entry["event"] for entry in logs if entry["event"].startswith("gcs_store_")]
    assert events.count("gcs_store_unavailable") == 1 and events.count("gcs_store_recovered") == 1
    unavailable = next(entry for entry in logs if entry["event"] == "gcs_store_unavailable")
    assert unavailable["url"] == redact_url(url)
    assert PASSWORD not in repr(logs)


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_writer_rides_out_postgresql_dropping_connections_mid_run(backend: Backend) -> None:
    url, start_proxy = backend.unreachable()
    start_proxy()
    with capture_logs() as logs:
        writer = backend.writer(url, flush_interval=0.01)
        writer.enqueue_put("nodes", "n0", {"state": "ALIVE"})
        assert writer.flush(timeout=10)
        proxy = backend.proxies[-1]
        proxy.stop()  # the server "crashes": connections drop, the port refuses
        for i in range(100):
            writer.enqueue_put("nodes", f"n{i}", {"state": "DEAD", "i": i})
        wait_until(lambda: not writer.is_healthy())
        proxy.start()
        assert writer.flush(timeout=10)
        assert writer.close()
    assert len(backend.open(url).scan("nodes", {"state": "DEAD"})) == 100
    events = [entry["event"] for entry in logs]
    assert events.count("gcs_store_unavailable") == 1 and events.count("gcs_store_recovered") == 1
    assert PASSWORD not in repr(logs)


def test_writer_close_gives_up_when_the_store_stays_unreachable(backend: Backend) -> None:
    url, _ = backend.unreachable()
    with capture_logs() as logs:
        writer = backend.writer(url)
        writer.enqueue_put("functions", "f1", {"code": b"..."})
        assert not writer.close(timeout=0.2)
    abandoned = [entry for entry in logs if entry["event"] == "gcs_store_writer_abandoned"]
    assert [(entry["url"], entry["lost"]) for entry in abandoned] == [(redact_url(url), 1)]


def test_on_durable_failure_is_logged_and_writing_goes_on(backend: Backend) -> None:
    def explode(keys: list[tuple[TableName, str]]) -> None:
        raise RuntimeError("callback bug")

    store = backend.open()
    with capture_logs() as logs:
        writer = backend.writer(store, explode)
        writer.enqueue_put("objects", "o1", {})
        assert writer.flush(timeout=10)
        writer.enqueue_put("objects", "o2", {})
        assert writer.close()
    assert store.get_many("objects", ["o1", "o2"]) == {"o1": {}, "o2": {}}
    assert [entry["event"] for entry in logs].count("gcs_store_on_durable_failed") == 2


def test_redact_url_hides_the_password() -> None:
    redacted = redact_url(f"postgresql+psycopg2://postgres:{PASSWORD}@db.example:5432/gcs")
    assert redacted == "postgresql+psycopg2://postgres:***@db.example:5432/gcs"
    assert redact_url("sqlite:////var/lib/babyray/gcs.db") == "sqlite:////var/lib/babyray/gcs.db"


def test_unavailable_error_names_the_redacted_url(backend: Backend) -> None:
    url, _ = backend.unreachable()
    with pytest.raises(GcsStoreUnavailable) as caught:
        backend.open(url)
    assert caught.value.url == redact_url(url)
    assert str(caught.value).startswith(f"GCS store {redact_url(url)} is unavailable: OperationalError")
    assert PASSWORD not in str(caught.value)
