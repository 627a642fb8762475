"""The GCS's merge of task events that arrive out of order from owners and workers."""

from __future__ import annotations

from babyray.gcs.task_states import merge_task_event


def _apply(*events):
    record = None
    for state, fields in events:
        record = merge_task_event(record, state, fields)
    return record


def test_a_late_running_event_does_not_undo_a_finished_task():
    record = _apply(
        ("submitted", {"name": "f"}),
        ("finished", {"finished_at": 2.0}),
        ("running", {"started_at": 1.0, "worker_id": "w1", "attempt": 0}),
    )
    assert record["state"] == "finished" and record["started_at"] == 1.0 and record["worker_id"] == "w1"


def test_a_late_submitted_event_does_not_undo_running():
    record = _apply(("running", {"started_at": 1.0, "attempt": 0}), ("submitted", {"name": "f", "spec": "s"}))
    assert record["state"] == "running" and record["name"] == "f"


def test_a_retry_moves_a_running_task_back_to_retried_and_the_next_attempt_runs():
    record = _apply(
        ("submitted", {}), ("running", {"attempt": 0}), ("retried", {"attempt": 1, "error_type": "E"})
    )
    assert record["state"] == "retried" and record["attempt"] == 1
    record = merge_task_event(record, "scheduled", {"attempt": 0})  # a stale event of attempt 0
    assert record["state"] == "retried"
    record = merge_task_event(record, "running", {"attempt": 1})
    assert record["state"] == "running"


def test_a_final_event_without_attempt_keeps_the_known_attempt_and_fields():
    record = _apply(
        ("running", {"attempt": 2, "node_id": "n"}), ("failed", {"attempt": None, "node_id": None})
    )
    assert record["state"] == "failed" and record["attempt"] == 2 and record["node_id"] == "n"
