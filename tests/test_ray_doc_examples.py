"""Ray Core's documented examples run on babyray with only ``import ray`` changed to
``import babyray as ray``, and print what Ray's documentation says they print.

Each script in tests/ray_doc_examples/ (its first line is the page it comes from) runs as a user
would run it: ``python script.py`` in a fresh process, which starts its own cluster. Where the page
shows no output, the script's own asserts are the check (exit status 0). After every run no
process of it may be left: each run's processes carry a marker in their environment.
Examples that fail on babyray wait in tests/ray_doc_examples/failing/, which no test runs.
"""

from __future__ import annotations

import glob
import math
import os
import re
import signal
import subprocess
import sys
import time
import uuid

from conftest import assert_session_clean

from babyray.procfs import processes_with_environment

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, "tests", "ray_doc_examples")
RUN_TIMEOUT = 150
MARKER_VARIABLE = "BABYRAY_DOC_EXAMPLE_RUN"


def _wait_until_gone(marker: str) -> list[int]:
    """The run's processes still alive after they had a few seconds to finish exiting."""
    for _ in range(20):
        left = processes_with_environment(MARKER_VARIABLE, marker)
        if not left:
            return []
        time.sleep(0.5)
    return left


def _run(name: str, tmp_path) -> subprocess.CompletedProcess:
    """Run one example script to its end; assert it left no process, segment or pid file."""
    marker = uuid.uuid4().hex
    env = {
        **os.environ,
        "BABYRAY_TEMP_DIR": str(tmp_path),
        "PYTHONPATH": ROOT,
        "PYTHONIOENCODING": "utf-8",
        MARKER_VARIABLE: marker,
    }
    try:
        done = subprocess.run(
            [sys.executable, os.path.join(EXAMPLES, f"{name}.py")],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            encoding="utf-8",
            timeout=RUN_TIMEOUT,
        )
    except subprocess.TimeoutExpired:
        for pid in processes_with_environment(MARKER_VARIABLE, marker):
            os.kill(pid, signal.SIGKILL)
        raise
    left = _wait_until_gone(marker)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert not left, f"{name} left processes running: {left}"
    for session_dir in glob.glob(os.path.join(str(tmp_path), "session_*")):
        assert_session_clean(session_dir)
    return done


def _ok(name: str, tmp_path) -> list[str]:
    """Run an example that must succeed; return its stdout lines."""
    done = _run(name, tmp_path)
    assert done.returncode == 0, done.stderr[-4000:]
    return done.stdout.splitlines()


# ---- tasks and objects ----------------------------------------------------------------------


def test_tasks_page_runs_without_init_and_cancels_a_queued_task(tmp_path):
    assert "Object reference was cancelled." in _ok("tasks_basics", tmp_path)


def test_get_task_function_name_prints_module_qualified_names(tmp_path):
    assert _ok("get_task_function_name", tmp_path) == [
        "__main__.Actor.get_task_function_name",
        "__main__.AsyncActor.get_task_function_name",
        "__main__.get_task_function_name",
    ]


def test_get_with_timeout_raises_get_timeout_error(tmp_path):
    assert "`get` timed out." in _ok("get_timeout", tmp_path)


def test_top_level_ref_arguments_arrive_as_values(tmp_path):
    assert _ok("object_args_by_value", tmp_path) == ["1 2 3", "1 2 3"]


def test_nested_ref_arguments_arrive_as_refs(tmp_path):
    lines = _ok("object_args_nested", tmp_path)
    assert any(
        re.fullmatch(r"args: \[ObjectRef\(\w+\), ObjectRef\(\w+\), ObjectRef\(\w+\)\]", line)
        for line in lines
    ), lines
    assert "values: [1, 2, 3]" in lines


def test_nested_tasks_return_refs_or_values(tmp_path):
    assert _ok("nested_tasks", tmp_path) == ["[1, 1, 1, 1]", "[1, 1, 1, 1]"]


def test_task_exceptions_print_the_cause_and_catch_as_user_type(tmp_path):
    out = "\n".join(_ok("task_exceptions", tmp_path))
    assert out.count("Exception: the real error") == 2
    assert "At least one of the input arguments for this task could not be computed" in out
    assert "MyException: a user exception" in out
    assert "<class '__main__.MyFinalException'>" in out
    assert "\na *final* user exception" in out


def test_crashed_task_is_retried(tmp_path):
    lines = _ok("task_retries_crash", tmp_path)
    assert len(lines) == 3 and set(lines) <= {"SUCCESS", "FAILURE"}, lines


def test_exception_retries_with_an_allowlist_of_classes_defined_in_the_script(tmp_path):
    lines = _ok("task_retries_exceptions", tmp_path)
    assert len(lines) == 7 and lines[3] == "FAILED AS EXPECTED", lines
    assert set(lines[:3]) <= {"SUCCESS", "FAILURE"}, lines
    assert set(lines[4:]) <= {"SUCCESS", "FAILURE AFTER RETRIES"}, lines


def test_registered_serializer_lets_a_class_holding_a_lock_through_put_and_get(tmp_path):
    assert _ok("custom_serializer", tmp_path) == []


def test_numpy_argument_is_read_only_and_the_task_error_reaches_the_driver(tmp_path):
    done = _run("zero_copy_read_only", tmp_path)
    assert done.returncode != 0
    assert "ValueError: assignment destination is read-only" in done.stderr


def test_objects_owned_by_the_driver_stay_reachable(tmp_path):
    lines = _ok("fault_tolerance_ownership", tmp_path)
    assert len(lines) >= 2 and set(lines) == {"1"}, lines


# ---- actors ---------------------------------------------------------------------------------


def test_actor_task_order_in_order_per_submitter_but_not_across_submitters_or_async(tmp_path):
    assert _ok("actor_task_order", tmp_path) == ["1", "3", "3", "2", "3", "2"]


def test_actor_restarts_four_times_then_fails(tmp_path):
    expected = [str(i) for i in range(1, 11)] * 5 + ["FAILURE"] * 10
    assert _ok("actor_restart", tmp_path) == expected


def test_manual_checkpoint_restores_a_crashed_actor(tmp_path):
    assert _ok("actor_manual_checkpoint", tmp_path) == ["Actor crashes, restarting..."] * 2


def test_named_and_detached_actors_are_found_by_name(tmp_path):
    assert _ok("named_actors", tmp_path) == ["named actors ok"]


def test_get_if_exists_returns_the_existing_named_actor(tmp_path):
    _ok("get_or_create", tmp_path)


def test_exit_actor_makes_the_call_raise_ray_actor_error(tmp_path):
    assert _ok("terminating_actors", tmp_path) == ["actor exited: RayActorError"]


def test_cancel_interrupts_a_running_async_actor_call(tmp_path):
    lines = _ok("actor_cancel_async", tmp_path)
    assert "Actor task canceled." in lines and "Object reference was cancelled." in lines, lines


def test_cancel_of_a_sync_actor_call_is_seen_by_is_canceled(tmp_path):
    lines = _ok("actor_cancel_sync", tmp_path)
    assert "Actor task canceled, cleaning up..." in lines
    assert lines[-2:] == ["Actor task was cancelled", "Actor detected cancellation: True"], lines


def test_actor_pool_map(tmp_path):
    assert _ok("actor_pool", tmp_path) == ["[2, 4, 6, 8]"]


def test_queue_passed_to_consumer_tasks(tmp_path):
    _ok("queue_consumers", tmp_path)


def test_queue_api_fifo_and_empty(tmp_path):
    assert _ok("queue_api", tmp_path) == ["queue empty"]


def test_signal_actor_releases_waiting_tasks(tmp_path):
    lines = _ok("signal_actor", tmp_path)
    assert lines[:2] == ["ready...", "set.."]
    assert lines.count("go!") == 4


def test_async_actor_calls_interleave_and_refs_are_awaitable(tmp_path):
    lines = _ok("async_actor", tmp_path)
    assert lines.count("started") == 5 and lines.count("finished") == 5


def test_async_actor_with_max_concurrency(tmp_path):
    lines = _ok("async_actor_max_concurrency", tmp_path)
    assert lines.count("started") == 100 and lines.count("ended") == 100


def test_threaded_actor_and_async_function_in_a_task(tmp_path):
    lines = _ok("threaded_actor", tmp_path)
    # the two threads print at once, so their lines may share one line of the output
    output = "\n".join(lines)
    assert (
        output.count("I'm running in a thread!") == 1 and output.count("I'm running in another thread!") == 1
    )
    assert "ran" in lines


def test_object_refs_as_asyncio_and_concurrent_futures(tmp_path):
    lines = _ok("objectref_futures", tmp_path)
    assert "awaited: 1" in lines and "wrapped future: 1" in lines
    assert lines.count("1") == 4


# ---- patterns -------------------------------------------------------------------------------


def test_pattern_tree_of_actors(tmp_path):
    _ok("pattern_tree_of_actors", tmp_path)


def test_pattern_pipelining_processes_every_item_in_order(tmp_path):
    assert _ok("pattern_pipelining", tmp_path) == [str(i) for i in range(10)] * 2


def test_pattern_async_actor_answers_while_it_loops(tmp_path):
    lines = _ok("pattern_async_actor", tmp_path)
    assert "get_num_executed_tasks didn't finish in 5 seconds" in lines
    assert any(re.fullmatch(r"num of executed tasks so far: \d+", line) for line in lines), lines


def test_pattern_map_reduce(tmp_path):
    _ok("pattern_map_reduce", tmp_path)


def test_pattern_tree_of_tasks_sorts(tmp_path):
    lines = _ok("pattern_tree_of_tasks", tmp_path)
    assert [line for line in lines if line.startswith("Array size")] == [
        "Array size: 200000",
        "Array size: 400000",
        "Array size: 800000",
    ]


def test_pattern_limit_pending_tasks(tmp_path):
    _ok("limit_pending_tasks", tmp_path)


def test_pattern_limit_running_tasks_with_memory_resource(tmp_path):
    _ok("limit_running_tasks", tmp_path)


def test_anti_pattern_return_ray_put(tmp_path):
    _ok("anti_pattern_return_ray_put", tmp_path)


def test_anti_pattern_ray_get_loop(tmp_path):
    _ok("anti_pattern_ray_get_loop", tmp_path)


def test_anti_pattern_global_variables(tmp_path):
    _ok("anti_pattern_global_variables", tmp_path)


def test_anti_pattern_too_many_objects(tmp_path):
    _ok("anti_pattern_too_many_objects", tmp_path)


def test_anti_pattern_pass_large_arg_by_value(tmp_path):
    _ok("anti_pattern_pass_large_arg_by_value", tmp_path)


def test_anti_pattern_redefine_task_in_loop(tmp_path):
    _ok("anti_pattern_redefine_in_loop", tmp_path)


def test_anti_pattern_too_fine_grained_tasks(tmp_path):
    lines = _ok("anti_pattern_too_fine_grained_tasks", tmp_path)
    assert [line.split(" takes ")[0] for line in lines] == [
        "Ordinary funciton call",
        "Parallelizing tasks",
        "Parallelizing tasks with batching",
    ]


def test_anti_pattern_ray_get_in_async_code(tmp_path):
    """Refs are awaited, gathered and (up to Python 3.10) passed to asyncio.wait; from 3.11
    asyncio.wait takes only futures and tasks, and Ray's refs fail there too (Ray issue #31606)."""
    done = _run("anti_pattern_ray_get_in_async", tmp_path)
    lines = done.stdout.splitlines()
    assert lines[:5] == ["o1 is 1", "o2 is 2", "o3 is ready", "o1 is 1", "o2 is 2"], lines
    if sys.version_info >= (3, 11):
        assert done.returncode != 0 and lines[5:] == [], lines
        assert "AttributeError: 'ObjectRef' object has no attribute 'add_done_callback'" in done.stderr
    else:
        assert done.returncode == 0 and lines[5:] == ["o3 is ready"], done.stderr[-4000:]


def test_anti_pattern_nested_ray_get(tmp_path):
    assert _ok("anti_pattern_nested_ray_get", tmp_path) == ["3", "3"]


# ---- generators -----------------------------------------------------------------------------


def test_dynamic_generator_splits_and_stores_errors(tmp_path):
    lines = _ok("dynamic_generator", tmp_path)
    split = [
        re.fullmatch(r"Split array of size (\d+) into (\d+) blocks of size 1000 each\.", line)
        for line in lines
    ]
    sizes = [(int(m.group(1)), int(m.group(2))) for m in split if m]
    assert len(sizes) == 1 and sizes[0][1] == math.ceil(sizes[0][0] / 1000), lines
    assert sum("Exception: error" in line for line in lines) == 2


def test_generator_yielding_past_num_returns_only_logs_the_error(tmp_path):
    _ok("dynamic_generator_extra_yields", tmp_path)
    logged = [
        line
        for path in glob.glob(os.path.join(str(tmp_path), "session_*", "logs", "*.jsonl"))
        for line in open(path, encoding="utf-8")
        if '"generator_error_after_returns"' in line
    ]
    assert len(logged) == 1 and '"error": "error"' in logged[0], logged


def test_streaming_generator_from_tasks_and_actors(tmp_path):
    lines = _ok("streaming_generator_basics", tmp_path)
    assert lines[:3] == ["2", "3", "4"]
    assert lines[3].startswith("Exception is raised when i == 1 as expected")
    assert lines[-10:] == [str(i) for i in range(5)] * 2


def test_streaming_generator_from_an_async_actor_method(tmp_path):
    assert _ok("streaming_generator_async_actor", tmp_path) == [str(i) for i in range(5)]


def test_streaming_generator_with_asyncio(tmp_path):
    assert sorted(_ok("streaming_generator_asyncio", tmp_path)) == sorted([str(i) for i in range(5)] * 3)


def test_streaming_generator_with_wait(tmp_path):
    lines = _ok("streaming_generator_wait", tmp_path)
    for line in (
        "timeout 0, nothing is ready.",
        "Wait for 5 seconds. The next item is ready.",
        "Wait for 0 seconds. The next item is not ready.",
        "[0, 1, 2, 3, 4, None]",
    ):
        assert line in lines


# ---- placement groups, multiprocessing, walkthrough -----------------------------------------


def test_placement_group_lifecycle(tmp_path):
    lines = _ok("placement_groups", tmp_path)
    out = "\n".join(lines)
    assert "'state': 'CREATED'" in lines[0]
    assert "Cannot create a placement group because {'GPU': 2} bundle cannot be created." in lines
    assert "'state': 'REMOVED'" in out
    assert "found by name: global_name" in lines


def test_children_captured_by_the_placement_group_unless_they_opt_out(tmp_path):
    lines = _ok("placement_group_capture_child_tasks", tmp_path)
    assert len(lines) == 2 and lines[0] == "Couldn't create a child task!", lines
    assert "timed out" in lines[1], lines


def test_multiprocessing_pool_map(tmp_path):
    assert _ok("multiprocessing_pool", tmp_path) == [str(i) for i in range(100)]


def test_monte_carlo_pi_walkthrough(tmp_path):
    lines = _ok("monte_carlo_pi", tmp_path)
    progress = [line for line in lines if line.startswith("Progress: ")]
    assert progress[-1] == "Progress: 100%"
    assert lines[-1].startswith("Estimated value of π is: 3.14")


# ---- namespaces -----------------------------------------------------------------------------


def test_init_namespace_is_the_job_s_namespace(tmp_path):
    assert _ok("namespaces", tmp_path) == ["hello"]


# ---- actor fate sharing, object store size --------------------------------------------------


def test_actor_dies_with_its_creator_and_a_detached_one_lives_on(tmp_path):
    lines = _ok("actor_creator_failure", tmp_path)
    assert lines[0].startswith("Failed to submit actor call") and "its owner has died" in lines[0], lines
    assert lines[1:] == ["detached_actor.ping: hello"]


def test_anti_pattern_unnecessary_ray_get_moves_800_mb_in_the_default_store(tmp_path):
    _ok("anti_pattern_unnecessary_ray_get", tmp_path)


# ---- metrics ----------------------------------------------------------------------------------


def test_metrics_example_is_scraped_while_it_sleeps(tmp_path):
    from test_metrics import find, wait_for

    from babyray.cluster import free_port

    port, marker = free_port(), uuid.uuid4().hex
    env = {
        **os.environ,
        "BABYRAY_TEMP_DIR": str(tmp_path),
        "PYTHONPATH": ROOT,
        "METRICS_EXPORT_PORT": str(port),
    }
    example = subprocess.Popen(
        [sys.executable, os.path.join(EXAMPLES, "metrics_example.py")],
        env={**env, MARKER_VARIABLE: marker},
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        lines = [example.stdout.readline().strip() for _ in range(4)]
        assert lines == ["Starting actor.", "Calling actor.", "Calling actor.", "Metrics should be exported."]
        text = wait_for(port, "ray_num_requests_total", 2.0, actor_name="my_actor")
        text = wait_for(port, "ray_curr_count", -5.0, actor_name="my_actor")
        text = wait_for(port, "ray_request_latency_count", 2.0, actor_name="my_actor")
        assert {labels["le"] for labels, _ in find(text, "ray_request_latency_bucket")} == {
            "0.1",
            "1.0",
            "+Inf",
        }
        rest, _ = example.communicate(timeout=RUN_TIMEOUT)
    finally:
        if example.poll() is None:
            example.kill()
            example.wait(timeout=10)
    assert example.returncode == 0 and rest.splitlines()[-1] == "Exiting!", rest
    left = _wait_until_gone(marker)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert not left, f"metrics_example left processes running: {left}"
    for session_dir in glob.glob(os.path.join(str(tmp_path), "session_*")):
        assert_session_clean(session_dir)
