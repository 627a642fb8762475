"""TaskState: the strings it stores, which states are final, and the merge rule's use of it."""

import json
import pickle

import pytest

from babyray.gcs.task_states import FINAL, STAGE, TaskState, merge_task_event


def test_values_are_the_stored_strings():
    assert [s.value for s in TaskState] == [
        "submitted",
        "retried",
        "scheduled",
        "running",
        "finished",
        "failed",
        "cancelled",
    ]
    assert TaskState("running") is TaskState.RUNNING and TaskState.RUNNING == "running"
    assert json.dumps(TaskState.FAILED) == '"failed"'


def test_final_and_stage_order():
    assert {s for s in TaskState if s.final} == FINAL == {"finished", "failed", "cancelled"}
    assert "finished" in FINAL and "running" not in FINAL and None not in FINAL
    assert (
        TaskState.SUBMITTED.stage
        == TaskState.RETRIED.stage
        < TaskState.SCHEDULED.stage
        < TaskState.RUNNING.stage
    )
    assert set(STAGE) | FINAL == set(TaskState)


def test_merge_stores_the_plain_string():
    record = merge_task_event(None, TaskState.RUNNING, {"worker_id": "w"})
    assert type(record["state"]) is str and record["state"] == "running"
    assert pickle.loads(pickle.dumps(record))["state"] == "running"
    record = merge_task_event(record, "finished", {})
    assert type(record["state"]) is str and record["state"] == "finished"


def test_final_state_is_kept_against_a_late_stage_given_as_enum():
    record = merge_task_event(None, TaskState.CANCELLED, {"attempt": 0})
    record = merge_task_event(record, TaskState.RUNNING, {"attempt": 3, "node_id": "n"})
    assert record["state"] == "cancelled" and record["attempt"] == 0 and record["node_id"] == "n"


def test_unknown_state_is_refused():
    with pytest.raises(ValueError):
        merge_task_event(None, "placed", {})
