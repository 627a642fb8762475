"""StoredTable and FlushPolicy without a cluster: write-through, eviction of durable entries, fault-back."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from babyray.gcs.durable_gate import DurableGate
from babyray.gcs.flushing import FlushPolicy
from babyray.gcs.reader import StoreReader
from babyray.gcs.store import GcsStore
from babyray.gcs.tables import GcsTables, StoredTable
from babyray.gcs.task_directory import TaskDirectory
from babyray.gcs.writer import StoreWriter
from babyray.ids import TaskID


class Parts:
    def __init__(self, url: str) -> None:
        self.url = url
        self.writer = StoreWriter(lambda: GcsStore(url))
        self.reader = StoreReader(lambda: GcsStore(url), self.writer.is_healthy, url)
        self.tables = GcsTables(self.writer, self.reader)

    def close(self) -> None:
        self.writer.close(timeout=2)
        self.reader.close()


@pytest.fixture
def parts(tmp_path: Path) -> Iterator[Parts]:
    parts = Parts(f"sqlite:///{tmp_path}/gcs.sqlite")
    try:
        yield parts
    finally:
        parts.close()


def test_finished_tasks_leave_memory_once_durable_and_fault_back_on_a_miss(parts: Parts) -> None:
    tasks = parts.tables.tasks
    assert isinstance(tasks, StoredTable)
    tasks.put("done", {"state": "finished", "name": "f"})
    tasks.put("running", {"state": "submitted", "name": "f"})
    assert parts.writer.flush(5)
    assert tasks.evict(FlushPolicy()) == 1
    assert tasks.cached("done") is None and tasks.cached("running") is not None
    assert tasks.get("done") == {"state": "finished", "name": "f"}  # read back from the store
    assert tasks.faults == 1 and tasks.cached("done") is not None
    assert tasks.get("never") is None and tasks.misses == 1


def test_an_entry_with_a_pending_write_is_never_evicted(parts: Parts) -> None:
    parts.reader.open()
    parts.writer.close()  # nothing becomes durable any more: every later put stays pending
    parts.writer = StoreWriter(lambda: GcsStore("sqlite:////nonexistent-dir/gcs.sqlite"))
    table = StoredTable("functions", parts.writer, parts.reader)
    table.put("fn", {"name": "f", "blob": b"x"})
    assert table.evict(FlushPolicy()) == 0 and table.cached("fn") is not None
    parts.writer.close(timeout=0.2)


def test_with_flushing_off_entries_stay_in_memory(parts: Parts) -> None:
    for i in range(10):
        parts.tables.tasks.put(f"t{i}", {"state": "finished"})
    assert parts.writer.flush(5)
    assert parts.tables.tasks.evict(FlushPolicy(enabled=False)) == 0
    assert len(parts.tables.tasks) == 10


def test_a_memory_bound_evicts_the_oldest_durable_entries_whatever_their_state(parts: Parts) -> None:
    for i in range(10):
        parts.tables.tasks.put(f"t{i}", {"state": "submitted"})
    assert parts.writer.flush(5)
    assert parts.tables.tasks.evict(FlushPolicy(max_entries=4)) == 6
    assert [key for key, _ in parts.tables.tasks.items()] == ["t6", "t7", "t8", "t9"]
    assert parts.tables.tasks.get("t0") == {"state": "submitted"}


def test_nodes_are_never_evicted(parts: Parts) -> None:
    parts.tables.nodes.put("n1", {"alive": False})
    assert parts.writer.flush(5)
    assert parts.tables.nodes.evict(FlushPolicy(max_entries=0)) == 0
    assert parts.tables.nodes.evict(FlushPolicy(max_entries=1)) == 0


def test_scan_merges_store_and_memory_with_memory_winning(parts: Parts) -> None:
    actors = parts.tables.actors
    actors.put("a1", {"state": "DEAD", "name": "x"})
    actors.put("a2", {"state": "ALIVE", "name": "y"})
    assert parts.writer.flush(5)
    actors.evict(FlushPolicy())
    assert actors.cached("a1") is None
    actors.put("a3", {"state": "ALIVE", "name": "x"})
    assert dict(actors.scan({"name": "x"})) == {
        "a1": {"state": "DEAD", "name": "x"},
        "a3": {"state": "ALIVE", "name": "x"},
    }


def test_task_events_fault_back_in_one_store_read_and_store_each_task_once(parts: Parts) -> None:
    tasks = parts.tables.tasks
    directory = TaskDirectory(tasks)
    done = [
        (TaskID(f"old{i}"), state, {"name": f"f{i}"})
        for i in range(20)
        for state in ("submitted", "finished")
    ]
    directory.record(done, _alive)
    assert parts.writer.flush(5)
    assert tasks.evict(FlushPolicy()) == 20
    reads: list[list[str]] = []
    stock_get_many = parts.reader.get_many

    def counted_get_many(table: str, keys: Any) -> Any:
        reads.append(list(keys))
        return stock_get_many(table, keys)  # type: ignore[arg-type]

    parts.reader.get_many = counted_get_many  # type: ignore[method-assign]
    puts: list[str] = []
    stock_put = tasks.put

    def counted_put(key: str, record: dict) -> None:
        puts.append(key)
        stock_put(key, record)

    tasks.put = counted_put  # type: ignore[method-assign]
    events = [(TaskID(f"old{i}"), "running", {"worker": "w"}) for i in range(20)]  # late: the worker's batch
    events += [
        (TaskID(f"new{i}"), state, {"worker": "w"}) for i in range(20) for state in ("running", "finished")
    ]
    events += [
        (TaskID(f"sub{i}"), state, {"name": "g"}) for i in range(5) for state in ("submitted", "finished")
    ]
    directory.record(events, _alive)
    assert len(reads) == 1 and sorted(reads[0]) == sorted(
        [f"old{i}" for i in range(20)] + [f"new{i}" for i in range(20)]
    )
    assert sorted(puts) == sorted({task_id for task_id, _, _ in events})  # each task stored once
    assert tasks.get("old3") == {"name": "f3", "state": "finished", "attempt": 0, "worker": "w"}
    assert tasks.get("new3") == {"state": "finished", "attempt": 0, "worker": "w"}
    assert tasks.get("sub1") == {"name": "g", "state": "finished", "attempt": 0}


def _alive(node: Any) -> bool:
    return False


def test_a_read_while_the_store_is_unreachable_answers_unknown_without_waiting(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/missing-dir/gcs.sqlite"
    writer = StoreWriter(lambda: GcsStore(url))
    reader = StoreReader(lambda: GcsStore(url), writer.is_healthy, url)
    try:
        assert not reader.open()
        table = StoredTable("tasks", writer, reader)
        assert table.get("t1") is None and table.misses == 0  # unknown, not "absent"
        assert reader.get_many("tasks", ["t1"]) is None
    finally:
        writer.close(timeout=0.2)


class _Writer:
    """A StoreWriter's durability view: keys with a write pending, and health."""

    def __init__(self) -> None:
        self.pending: set[str] = set()
        self.healthy = True

    def is_healthy(self) -> bool:
        return self.healthy

    def durable_among(self, table: str, keys: list[str]) -> list[str]:
        assert table == "actors"
        return [key for key in keys if key not in self.pending]


def test_actor_news_waits_until_the_actor_record_is_durable_and_keeps_its_order() -> None:
    writer = _Writer()
    gate = DurableGate(writer, "actors")  # type: ignore[arg-type]
    assert gate.post("durable", [("caller", "alive")]) == [("caller", "alive")]
    writer.pending = {"a1"}
    assert gate.post("a1", [("driver", "registered")]) == [] and len(gate) == 1
    assert gate.release() == []  # still pending
    writer.pending = set()
    assert gate.post("a1", [("driver", "alive")]) == []  # behind the held one, though durable now
    assert gate.release() == [("driver", "registered"), ("driver", "alive")]
    assert gate.release() == [] and len(gate) == 0
    assert gate.post("a1", [("driver", "dead")]) == [("driver", "dead")]


def test_actor_news_is_not_held_while_the_store_is_unhealthy() -> None:
    writer = _Writer()
    gate = DurableGate(writer, "actors")  # type: ignore[arg-type]
    writer.pending = {"a1", "a2"}
    assert gate.post("a1", [("driver", "registered")]) == []
    writer.healthy = False  # an outage: the cluster serves from memory
    assert gate.post("a2", [("driver", "registered")]) == [("driver", "registered")]
    assert gate.release() == [("driver", "registered")]
    assert DurableGate(None, "actors").post("a3", [("driver", "x")]) == [("driver", "x")]
