"""The retry rule and the failed result every part builds, without a cluster."""

from __future__ import annotations

import pytest

from babyray import serialization
from babyray.exceptions import WorkerCrashedError
from babyray.protocol import values as vm
from babyray.task_failure import failed_result, failed_returns, retry_allowed, take_retry


def spec(max_retries=3, attempt=0, returns=("o1", "o2")):
    return vm.TaskSpec(
        "t1",
        "j",
        "f",
        "fn",
        [],
        {},
        len(returns),
        list(returns),
        {"CPU": 1.0},
        None,
        "owner",
        max_retries=max_retries,
        attempt=attempt,
    )


@pytest.mark.parametrize(
    "used, max_retries, allowed",
    [
        (0, 0, False),
        (0, 1, True),
        (1, 1, False),
        (2, 3, True),
        (3, 3, False),
        (100, -1, True),
        (0, -5, False),
    ],
)
def test_retry_allowed_counts_against_max_retries(used, max_retries, allowed):
    assert retry_allowed(used, max_retries) is allowed


def test_take_retry_spends_the_budget_one_attempt_at_a_time():
    first = take_retry(spec(max_retries=2))
    second = take_retry(first)
    assert first.attempt == 1 and second.attempt == 2
    assert take_retry(second) is None


def test_take_retry_with_no_retries_changes_nothing():
    s = spec(max_retries=0)
    assert take_retry(s) is None and s.attempt == 0


def test_unlimited_retries_never_run_out():
    s = spec(max_retries=-1)
    for _ in range(50):
        s = take_retry(s)
    assert s.attempt == 50


def test_failed_result_carries_the_same_error_in_every_return():
    result = failed_result(spec(), WorkerCrashedError("pid 7 killed by signal SIGSEGV"), node_id="n1")
    assert result.task_id == "t1" and result.node_id == "n1"
    assert [oid for oid, _ in result.returns] == ["o1", "o2"]
    for _, value in result.returns:
        error = serialization.deserialize(value.blob)
        assert isinstance(error, WorkerCrashedError) and "SIGSEGV" in str(error)


def test_failed_returns_keeps_an_error_value_as_given():
    value = vm.ErrorValue(serialization.dumps(ValueError("x")))
    assert failed_returns(spec(), value) == (("o1", value), ("o2", value))
