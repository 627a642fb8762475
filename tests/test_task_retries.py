"""Task retries when workers die, and retry_exceptions, through the public API."""

from __future__ import annotations

import os
import time

import pytest

import babyray as ray
from babyray.exceptions import WorkerCrashedError


@ray.remote
def die_until(marker_dir, deaths):
    """Kill our own process the first ``deaths`` times we run, then return the attempt count."""
    attempts = len(os.listdir(marker_dir))
    open(os.path.join(marker_dir, f"attempt-{attempts}"), "w").close()
    if attempts < deaths:
        os._exit(1)
    return attempts


@ray.remote
def flaky(marker_dir, failures):
    attempts = len(os.listdir(marker_dir))
    open(os.path.join(marker_dir, f"attempt-{attempts}"), "w").close()
    if attempts < failures:
        raise ConnectionError(f"transient failure {attempts}")
    return attempts


@ray.remote
def write_pid_and_sleep(marker_dir, seconds):
    attempts = len(os.listdir(marker_dir))
    with open(os.path.join(marker_dir, f"attempt-{attempts}"), "w") as f:
        f.write(str(os.getpid()))
    time.sleep(seconds)
    return os.getpid()


@ray.remote
def sleep_and_report_pid(seconds):
    time.sleep(seconds)
    return os.getpid()


def test_task_whose_worker_dies_is_retried_on_a_healthy_worker(shared_cluster, tmp_path):
    assert ray.get(die_until.remote(str(tmp_path), 2), timeout=60) == 2


def test_retries_exhausted_raise_worker_crashed_error(shared_cluster, tmp_path):
    with pytest.raises(WorkerCrashedError, match="die_until"):
        ray.get(die_until.options(max_retries=1).remote(str(tmp_path), 5), timeout=60)
    assert len(os.listdir(tmp_path)) == 2  # the first run and one retry


def test_max_retries_zero_means_no_retry(shared_cluster, tmp_path):
    with pytest.raises(WorkerCrashedError):
        ray.get(die_until.options(max_retries=0).remote(str(tmp_path), 1), timeout=60)
    assert len(os.listdir(tmp_path)) == 1


def test_worker_killed_with_sigkill_mid_task_is_replaced_and_the_task_retried(shared_cluster, tmp_path):
    ref = write_pid_and_sleep.remote(str(tmp_path), 2)
    first_pid = _wait_for_pid_file(tmp_path / "attempt-0")
    os.kill(first_pid, 9)
    result_pid = ray.get(ref, timeout=60)
    assert result_pid != first_pid
    assert (tmp_path / "attempt-1").exists()
    assert len(set(ray.get([sleep_and_report_pid.remote(0.2) for _ in range(4)], timeout=60))) >= 1


def test_application_exceptions_are_not_retried_by_default(shared_cluster, tmp_path):
    with pytest.raises(ConnectionError):
        ray.get(flaky.remote(str(tmp_path), 1))
    assert len(os.listdir(tmp_path)) == 1


def test_retry_exceptions_true_retries_application_errors(shared_cluster, tmp_path):
    assert ray.get(flaky.options(retry_exceptions=True, max_retries=3).remote(str(tmp_path), 2)) == 2


def test_retry_exceptions_list_retries_only_those_types(shared_cluster, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    assert ray.get(flaky.options(retry_exceptions=[ConnectionError]).remote(str(tmp_path), 1)) == 1
    with pytest.raises(ConnectionError):
        ray.get(flaky.options(retry_exceptions=[KeyError]).remote(str(other), 1))
    assert len(os.listdir(other)) == 1


def _wait_for_pid_file(path, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if path.exists() and path.read_text():
            return int(path.read_text())
        time.sleep(0.02)
    raise AssertionError(f"{path} was never written")


def test_retry_exceptions_list_of_a_class_no_other_process_can_import(shared_cluster, tmp_path):
    """The list stays with the owner: a class defined in the caller (as in a script's __main__,
    after the cluster started) retries its task, and a type outside the list does not."""

    class Transient(Exception):
        pass

    @ray.remote(max_retries=3, retry_exceptions=[Transient])
    def transient_until(marker_dir, failures, error_type):
        attempts = len(os.listdir(marker_dir))
        open(os.path.join(marker_dir, f"attempt-{attempts}"), "w").close()
        if attempts < failures:
            raise error_type(f"failure {attempts}")
        return attempts

    assert ray.get(transient_until.remote(str(tmp_path), 2, Transient), timeout=120) == 2
    other = tmp_path / "other"
    other.mkdir()
    with pytest.raises(ValueError, match="failure 0"):
        ray.get(transient_until.remote(str(other), 1, ValueError), timeout=120)
    assert len(os.listdir(other)) == 1
