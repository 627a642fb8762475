"""babyray.log_reader, the lines of `babyray logs`, babyray.progress and the Chrome-trace builder,
on synthetic log files."""

from __future__ import annotations

import io
import json
import threading
import time

from babyray import log_reader, tracing
from babyray.cli.log_commands import render
from babyray.progress import Progress, progress


def _write(path, events):
    with open(path, "a") as f:
        for e in events:
            f.write(json.dumps(e) + "\n")


def _executed(task, worker, start, end, state="finished", node="n1"):
    return {
        "ts": end,
        "level": "info",
        "event": "task_executed",
        "component": "worker",
        "node_id": node,
        "pid": 100,
        "worker_id": worker,
        "task_id": task,
        "function": "f",
        "state": state,
        "start": start,
        "end": end,
        "attempt": 0,
    }


def test_load_merges_every_process_file_in_time_order_and_skips_partial_lines(tmp_path):
    log_dir = tmp_path / "logs"
    log_dir.mkdir()
    _write(log_dir / "worker-1.jsonl", [_executed("t2", "w1", 2.0, 2.5), _executed("t1", "w1", 1.0, 1.5)])
    _write(
        log_dir / "gcs-2.jsonl", [{"ts": 1.2, "level": "info", "event": "gcs_started", "component": "gcs"}]
    )
    with open(log_dir / "gcs-2.jsonl", "a") as f:
        f.write('{"ts": 9, "event": "half')  # being written
    events = log_reader.load(str(tmp_path))
    assert [e["event"] for e in events] == ["gcs_started", "task_executed", "task_executed"]
    assert [e["ts"] for e in events] == [1.2, 1.5, 2.5]
    assert [e["task_id"] for e in log_reader.load(str(tmp_path), events=("task_executed",))] == ["t1", "t2"]


def test_filter_events_matches_id_prefixes_and_a_tasks_objects():
    events = [
        _executed("abcdef", "w1", 1, 2),
        _executed("123456", "w2", 1, 2, node="n2"),
        {"ts": 3, "event": "object_sealed", "object_id": "abcdef0001", "component": "object_store"},
    ]
    assert len(log_reader.filter_events(events, task="abc")) == 2
    assert [e["task_id"] for e in log_reader.filter_events(events, node="n2")] == ["123456"]
    assert log_reader.filter_events(events, worker="w1", component="worker")[0]["task_id"] == "abcdef"
    assert log_reader.filter_events(events, event="object_sealed")[0]["object_id"] == "abcdef0001"


def test_render_puts_time_level_component_where_and_event_first():
    line = render(_executed("t1", "w1", 1.0, 1.5))
    assert " INFO " in line and "worker" in line and "n1/w1" in line and "task_executed  task_id=t1" in line


def test_latencies_and_throughput_come_from_task_executed_events():
    runs = log_reader.task_executions(
        [_executed(f"t{i}", "w1", i * 0.1, i * 0.1 + 0.05) for i in range(10)] + [{"event": "other"}]
    )
    assert len(runs) == 10 and runs[0]["duration_s"] == 0.05
    summary = log_reader.latency_summary(runs)
    assert summary["count"] == 10 and abs(summary["p50_ms"] - 50) < 1e-6
    assert abs(log_reader.throughput(runs) - 10 / 0.95) < 1e-6
    assert log_reader.latency_summary([]) == {"count": 0} and log_reader.throughput([]) == 0.0


def test_follow_yields_events_appended_after_it_started(tmp_path):
    path = tmp_path / "worker-1.jsonl"
    _write(path, [_executed("old", "w1", 1, 2)])
    seen, done = [], threading.Event()

    def reader():
        for event in log_reader.follow(str(tmp_path), poll=0.02, stop=done.is_set):
            seen.append(event["task_id"])

    thread = threading.Thread(target=reader)
    thread.start()
    time.sleep(0.1)
    _write(path, [_executed("new", "w1", 3, 4)])
    deadline = time.monotonic() + 5
    while not seen and time.monotonic() < deadline:
        time.sleep(0.02)
    done.set()
    thread.join(5)
    assert seen == ["new"]


def test_chrome_trace_has_one_complete_event_per_execution_and_named_lanes():
    runs = log_reader.task_executions(
        [
            _executed("t1", "w1", 1.0, 1.5),
            _executed("t2", "w2", 1.2, 1.3, "failed"),
            _executed("t3", "w1", 2.0, 2.1, node="n2"),
        ]
    )
    trace = tracing.chrome_trace(runs)
    complete = [e for e in trace if e["ph"] == "X"]
    assert [e["args"]["task_id"] for e in complete] == ["t1", "t2", "t3"]
    assert complete[0]["ts"] == 1e6 and complete[0]["dur"] == 5e5
    assert complete[0]["pid"] == complete[1]["pid"] != complete[2]["pid"]
    assert complete[0]["tid"] != complete[1]["tid"]
    names = {(e["name"], e["pid"], e["tid"]): e["args"]["name"] for e in trace if e["ph"] == "M"}
    assert names[("process_name", complete[2]["pid"], 0)] == "node n2"
    json.dumps(trace)


def test_plot_draws_a_bar_per_execution(tmp_path):
    runs = log_reader.task_executions([_executed(f"t{i}", f"w{i % 2}", i, i + 0.5) for i in range(4)])
    assert tracing.plot(runs, str(tmp_path / "t.png")) == 4
    assert (tmp_path / "t.png").stat().st_size > 1000


def test_progress_writes_plain_lines_when_not_a_terminal_and_a_bar_on_one():
    out = io.StringIO()
    assert list(progress(range(5), desc="work", stream=out, tty=False, min_interval=0)) == list(range(5))
    lines = out.getvalue().splitlines()
    assert lines[-1].startswith("work: 5/5 (100%") and "\r" not in out.getvalue() and len(lines) == 5
    bar = io.StringIO()
    with Progress(4, "bar", stream=bar, tty=True) as p:
        p.update(4)
    text = bar.getvalue()
    assert text.startswith("\rbar: |#") and text.endswith("\n") and "4/4 100.0%" in text
