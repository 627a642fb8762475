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
import re
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import assert_session_clean
from test_gcs_store import PASSWORD, PG_URL, drop_tables

import babyray as ray
from babyray.api import context, runtime
from babyray.cluster import START_TIMEOUT, ClusterStartError, free_port
from babyray.gcs import store as store_module
from babyray.gcs.store import GcsStore
from babyray.ids import task_id_of
from babyray.procfs import is_running
from babyray.protocol import cluster as cm
from babyray.protocol import gcs as gm
from babyray.session import new_session_dir, session_pids

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
        core.request(core.gcs, cm.GetNodes)
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


class ProxyProcess:
    """A TcpProxy to PostgreSQL in a process of its own: the cluster's processes, forked from
    this one, must not inherit its listening socket, or stop() could not free the port."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._process: subprocess.Popen | None = None

    def start(self) -> None:
        code = (
            "import sys, time; sys.path.insert(0, sys.argv[1]); from test_gcs_store import TcpProxy; "
            "TcpProxy(int(sys.argv[2]), ('127.0.0.1', 5432)).start(); time.sleep(3600)"
        )
        self._process = subprocess.Popen(
            [sys.executable, "-c", code, os.path.dirname(__file__), str(self.port)]
        )
        wait_until(self._accepts, what="the proxy listening")

    def _accepts(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            return True
        except OSError:
            return False

    def stop(self) -> None:
        """Drop every connection at once, like a crashed server."""
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None


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
        info = ray.init(
            num_cpus=2,
            temp_dir=str(self.tmp_path),
            object_store_memory=64 * 1024 * 1024,
            gcs_url=url or self.url,
            gcs_table_prefix=self.prefix,
            **settings,
        )
        try:
            yield Gcs()
        finally:
            ray.shutdown()
        assert_session_clean(info.address_info["session_dir"])


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

        def flushed_all() -> bool:  # a worker's task events may still arrive after one flush
            assert gcs.flush().durable
            stats = gcs.stats()
            return stats.pending_writes == 0 and not stats.flushing

        wait_until(flushed_all, what="every pending write flushed")
        stats = gcs.stats()
        assert stats.store_healthy
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
        wait_until(
            lambda: (
                (gcs.entries("tasks", [task_id_of(ref.id)])[task_id_of(ref.id)] or {}).get("state")
                == "failed"
            ),
            what="failed state",
        )


def test_evicted_entries_are_faulted_back_on_a_miss(backend: Backend) -> None:
    with backend.cluster() as gcs:
        refs = [double.remote(i) for i in range(20)]
        assert ray.get(refs) == [2 * i for i in range(20)]
        task_ids = [task_id_of(ref.id) for ref in refs]
        wait_until(
            lambda: gcs.flush().evicted == 0 and gcs.stats().in_memory["tasks"] == 0,
            what="finished tasks evicted",
        )
        stats = gcs.stats()
        assert stats.in_memory["functions"] == 0 and stats.evicted["tasks"] >= 20
        assert stats.faults["tasks"] == 0

        lineage = gcs.entries("tasks", task_ids)  # a miss: read back from the store
        assert all(lineage[t]["state"] == "finished" and lineage[t]["spec"].task_id == t for t in task_ids)
        assert gcs.stats().faults["tasks"] == 20
        function_id = lineage[task_ids[0]]["function_id"]
        blob = gcs.ask(gm.GetFunction("fn", function_id))
        assert isinstance(blob, gm.FunctionBlob) and blob.blob  # a flushed function still resolves
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
    proxy = ProxyProcess(proxy_port())
    url = f"postgresql+psycopg2://postgres:{PASSWORD}@127.0.0.1:{proxy.port}/test"
    proxy.start()
    try:
        with pg_backend.cluster(url=url) as gcs:
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


@pytest.mark.parametrize("scheme", ["postgresql", "postgres", "postgresql+psycopg2", "sqlite"])
def test_every_url_form_works_with_the_shipped_driver(scheme: str, tmp_path: Path) -> None:
    """psql's and libpq's URL forms use the shipped psycopg2 (SQLAlchemy 2.1's default
    PostgreSQL driver, psycopg 3, is not installed); the tasks reach the store."""
    prefix = f"t{uuid.uuid4().hex[:10]}_"
    url = (
        f"sqlite:///{tmp_path}/gcs.sqlite"
        if scheme == "sqlite"
        else f"{scheme}://postgres:{PASSWORD}@127.0.0.1:5432/test"
    )
    backend = Backend(scheme, url, prefix, tmp_path)
    try:
        with backend.cluster(url=url) as gcs:
            refs = [double.remote(i) for i in range(4)]
            assert ray.get(refs, timeout=60) == [0, 2, 4, 6]
            assert gcs.flush().durable and gcs.stats().store_healthy
        store = backend.open()
        try:
            stored = store.get_many("tasks", [task_id_of(ref.id) for ref in refs])
        finally:
            store.close()
        assert {record["state"] for record in stored.values()} == {"finished"} and len(stored) == 4
    finally:
        if scheme != "sqlite":
            drop_tables(PG_URL, prefix)


UNUSABLE_URLS = {  # PostgreSQL here trusts 127.0.0.1, so a refused login is an unknown role
    "bad host": (
        "postgresql://postgres:{pw}@no-such-host.invalid:5432/test",
        "could not translate host name",
    ),
    "nothing listening": ("postgresql://postgres:{pw}@127.0.0.1:{closed}/test", "Connection refused"),
    "database missing": (
        "postgresql://postgres:{pw}@127.0.0.1:5432/no_such_db_{tag}",
        'database "no_such_db_[0-9a-f]+" does not exist',
    ),
    "login refused": (
        "postgresql://nobody_{tag}:{pw}@127.0.0.1:5432/test",
        'role "nobody_[0-9a-f]+" does not exist',
    ),
    "driver missing": (
        "postgresql+psycopg://postgres:{pw}@127.0.0.1:5432/test",
        "driver is not installed .No module named 'psycopg'.*postgresql\\+psycopg2://",
    ),
}


def _unusable_url(case: str) -> tuple[str, str]:
    url, cause = UNUSABLE_URLS[case]
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    return url.format(pw=PASSWORD, closed=closed, tag=uuid.uuid4().hex[:6]), cause


@pytest.mark.parametrize("case", list(UNUSABLE_URLS))
def test_an_unusable_store_url_fails_init_at_once_naming_the_url_and_the_cause(
    case: str, tmp_path: Path
) -> None:
    url, cause = _unusable_url(case)
    started = time.monotonic()
    with pytest.raises(ClusterStartError) as info:
        ray.init(num_cpus=1, temp_dir=str(tmp_path), gcs_url=url)
    assert time.monotonic() - started < 5.0
    message = str(info.value)
    assert url.replace(PASSWORD, "***") in message and PASSWORD not in message, message
    assert re.search(cause, message), message
    assert not ray.is_initialized()
    for session_dir in glob.glob(os.path.join(tmp_path, "session_*")):
        assert_session_clean(session_dir)


def test_babyray_start_head_with_an_unusable_store_url_fails_at_once(tmp_path: Path) -> None:
    url, cause = _unusable_url("database missing")
    env = {**os.environ, "BABYRAY_TEMP_DIR": str(tmp_path)}
    started = time.monotonic()
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "babyray.cli",
            "start",
            "--head",
            "--port",
            str(free_port()),
            "--node-ip",
            "127.0.0.1",
            "--gcs-url",
            url,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    elapsed = time.monotonic() - started
    assert run.returncode == 1, run.stdout + run.stderr
    assert url.replace(PASSWORD, "***") in run.stderr and re.search(cause, run.stderr), run.stderr
    assert PASSWORD not in run.stdout + run.stderr
    assert elapsed < 5.0 + _python_start_seconds(), elapsed
    assert not list((tmp_path / "nodes").glob("*.json"))  # nothing recorded as started
    for session_dir in glob.glob(os.path.join(tmp_path, "session_*")):
        assert_session_clean(session_dir)


def _python_start_seconds() -> float:
    """How long starting this Python and importing babyray's CLI takes here, now."""
    started = time.monotonic()
    subprocess.run([sys.executable, "-c", "import babyray.cli"], check=True, timeout=60)
    return time.monotonic() - started


def test_a_part_that_fails_to_start_names_its_cause_and_an_existing_log(tmp_path: Path) -> None:
    started = time.monotonic()
    with pytest.raises(ClusterStartError) as info:  # no machine has 100 TB of shared memory
        ray.init(num_cpus=1, temp_dir=str(tmp_path), object_store_memory=10**14)
    assert time.monotonic() - started < START_TIMEOUT / 2  # reported when it fails, not at the timeout
    message = str(info.value)
    assert re.match(r"object_store did not start: OSError: .*\(see (\S+)\)$", message), message
    log_file = re.search(r"\(see (\S+)\)$", message).group(1)
    assert os.path.isfile(log_file) and "handler_failed" in Path(log_file).read_text()
    assert not ray.is_initialized()
    for session_dir in glob.glob(os.path.join(tmp_path, "session_*")):
        wait_until(
            lambda d=session_dir: not [pid for pid in session_pids(d) if is_running(pid)],
            timeout=10,
            what="the failed cluster's processes gone",
        )
        assert_session_clean(session_dir)


def test_an_unsupported_store_url_fails_init_with_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ClusterStartError, match="unsupported GCS store backend 'mysql'"):
        ray.init(num_cpus=1, temp_dir=str(tmp_path), gcs_url="mysql://user:pw@127.0.0.1/x")
    assert not ray.is_initialized()
    for session_dir in glob.glob(os.path.join(tmp_path, "session_*")):  # the admin stops its parts
        wait_until(
            lambda d=session_dir: not [pid for pid in session_pids(d) if is_running(pid)],
            timeout=10,
            what="the failed cluster's processes gone",
        )
        assert_session_clean(session_dir)


def test_a_gcs_refusing_its_store_at_start_fails_init_with_a_typed_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The session's own SQLite store (not checked before the parts start) has another schema
    version: the GCS answers its start message with a GcsError, which init raises as the cause."""
    sessions: list[str] = []

    def session_with_an_old_store(temp_dir: str | None = None) -> str:
        session_dir = new_session_dir(temp_dir)
        with monkeypatch.context() as patch:
            patch.setattr(store_module, "SCHEMA_VERSION", 99)
            GcsStore(f"sqlite:///{os.path.join(session_dir, 'gcs.sqlite')}").close()
        sessions.append(session_dir)
        return session_dir

    monkeypatch.setattr(runtime, "new_session_dir", session_with_an_old_store)
    with pytest.raises(ClusterStartError) as info:
        ray.init(num_cpus=1, temp_dir=str(tmp_path))
    message = str(info.value)
    assert re.match(
        r"gcs did not start: GcsSchemaVersionError: .*has schema version 99, this babyray needs "
        rf"{store_module.SCHEMA_VERSION}.* \(see (\S+)\)$",
        message,
    ), message
    assert not ray.is_initialized()
    for session_dir in sessions:
        wait_until(
            lambda d=session_dir: not [pid for pid in session_pids(d) if is_running(pid)],
            timeout=10,
            what="the failed cluster's processes gone",
        )
        assert_session_clean(session_dir)
