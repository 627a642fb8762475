"""Remote functions through the public API: Ray's task semantics on a real cluster."""

from __future__ import annotations

import inspect
import time

import pytest

import babyray as ray
from babyray.exceptions import GetTimeoutError, RayTaskError, TaskCancelledError


@ray.remote
def double(x):
    return x * 2


@ray.remote
def identity(x):
    return x


@ray.remote(num_returns=3)
def three_values():
    return 1, 2, 3


@ray.remote
def fail(message):
    raise ValueError(message)


@ray.remote
def fib(n):
    if n < 2:
        return n
    return sum(ray.get([fib.remote(n - 1), fib.remote(n - 2)]))


@ray.remote
def calls_later_function(x):
    return ray.get(defined_after.remote(x))


@ray.remote
def defined_after(x):
    return x + 100


@ray.remote
def interruptible_sleep(seconds):
    end = time.time() + seconds
    while time.time() < end:
        time.sleep(0.01)
    return "finished"


def test_remote_function_returns_its_value(shared_cluster):
    assert ray.get(double.remote(21)) == 42


def test_get_of_a_list_returns_values_in_order(shared_cluster):
    assert ray.get([double.remote(i) for i in range(10)]) == [2 * i for i in range(10)]


def test_fan_out_of_1000_tasks_gives_correct_results(shared_cluster):
    refs = [double.remote(i) for i in range(1000)]
    assert ray.get(refs) == [2 * i for i in range(1000)]


def test_top_level_refs_are_resolved_before_the_task_runs(shared_cluster):
    assert ray.get(double.remote(double.remote(double.remote(1)))) == 8


def test_refs_nested_in_containers_are_passed_as_refs(shared_cluster):
    inner = double.remote(5)
    out = ray.get(identity.remote([inner, {"k": inner}]))
    assert isinstance(out[0], ray.ObjectRef) and isinstance(out[1]["k"], ray.ObjectRef)
    assert ray.get(out[0]) == 10


def test_num_returns_gives_that_many_refs(shared_cluster):
    refs = three_values.remote()
    assert len(refs) == 3 and ray.get(refs) == [1, 2, 3]


def test_options_override_num_returns(shared_cluster):
    refs = identity.options(num_returns=2).remote((7, 8))
    assert ray.get(refs) == [7, 8]


def test_wrong_number_of_returns_is_a_task_error(shared_cluster):
    with pytest.raises(RayTaskError, match="num_returns=2"):
        ray.get(identity.options(num_returns=2).remote((1, 2, 3))[0])


def test_task_exception_is_both_ray_task_error_and_the_original_class(shared_cluster):
    with pytest.raises(ValueError) as info:
        ray.get(fail.remote("boom"))
    assert isinstance(info.value, RayTaskError)
    assert "boom" in str(info.value)
    assert "Traceback" in str(info.value) and "raise ValueError(message)" in str(info.value)


def _raise_line(function) -> int:
    """The line of ``raise`` in ``function``'s source file."""
    lines, first = inspect.getsourcelines(function)
    return first + next(i for i, line in enumerate(lines) if line.strip().startswith("raise"))


def test_remote_traceback_names_the_users_file_line_and_source_line(shared_cluster):
    def fails(message):
        raise ValueError(message)

    def make_failing():
        def inner(x):
            raise KeyError(f"no {x}")  # a closure

        return inner

    class Breaks:
        def method(self):
            raise RuntimeError("actor method broke")

    inner = make_failing()
    cases = [
        (ray.remote(fails).remote("boom"), fails, "raise ValueError(message)"),
        (ray.remote(inner).remote(3), inner, 'raise KeyError(f"no {x}")  # a closure'),
        (
            ray.remote(Breaks).remote().method.remote(),
            Breaks.method,
            'raise RuntimeError("actor method broke")',
        ),
    ]
    for ref, function, source in cases:
        with pytest.raises(RayTaskError) as info:
            ray.get(ref, timeout=60)
        text = str(info.value)
        assert f'File "{__file__}", line {_raise_line(function)}, in {function.__name__}' in text, text
        assert source in text and "<dynamic-code>" not in text, text


def test_task_depending_on_a_failed_task_fails_too(shared_cluster):
    with pytest.raises(ValueError, match="upstream"):
        ray.get(double.remote(fail.remote("upstream")))


def test_remote_recursion_fib_10_on_two_cpus(shared_cluster):
    assert ray.get(fib.remote(10), timeout=120) == 55


def test_a_task_may_call_a_function_defined_after_it(shared_cluster):
    assert ray.get(calls_later_function.remote(1)) == 101


def test_tasks_may_put_and_wait_inside(shared_cluster):
    @ray.remote
    def inner_api():
        ref = ray.put([1, 2, 3])
        ready, _ = ray.wait([ref, double.remote(1)], num_returns=2)
        return ray.get(ready)

    assert ray.get(inner_api.remote()) == [[1, 2, 3], 2]


def test_get_timeout_raises_get_timeout_error_which_is_a_timeout_error(shared_cluster):
    ref = interruptible_sleep.remote(2)
    with pytest.raises(GetTimeoutError) as info:
        ray.get(ref, timeout=0.2)
    assert isinstance(info.value, TimeoutError)
    assert ray.get(ref, timeout=30) == "finished"


def test_wait_with_timeout_returns_what_is_ready(shared_cluster):
    slow = interruptible_sleep.remote(3)
    ready, not_ready = ray.wait([slow], timeout=0.1)
    assert ready == [] and not_ready == [slow]


def test_calling_a_remote_function_directly_raises_type_error(shared_cluster):
    with pytest.raises(TypeError, match="remote"):
        double(1)


def test_wrong_number_of_arguments_raises_at_remote(shared_cluster):
    with pytest.raises(TypeError, match="double"):
        double.remote(1, 2)


def test_unpicklable_argument_raises_a_clear_error_and_cluster_keeps_working(shared_cluster):
    import threading

    with pytest.raises(TypeError, match="serialize"):
        identity.remote(threading.Lock())
    assert ray.get(double.remote(2)) == 4


def test_unpicklable_return_value_is_a_task_error(shared_cluster):
    @ray.remote
    def returns_lock():
        import threading

        return threading.Lock()

    with pytest.raises(RayTaskError, match="serialize"):
        ray.get(returns_lock.remote())
    assert ray.get(double.remote(3)) == 6


def test_get_of_a_non_ref_raises_value_error(shared_cluster):
    with pytest.raises(ValueError, match="ObjectRef"):
        ray.get(42)
    with pytest.raises(ValueError, match="ObjectRef"):
        ray.get([double.remote(1), "nope"])


def test_unknown_option_raises_value_error(shared_cluster):
    with pytest.raises(ValueError, match="num_cpu"):
        double.options(num_cpu=1)


def test_task_with_custom_resource_runs(shared_cluster):
    assert ray.get(double.options(resources={"custom": 1}).remote(4)) == 8


def test_infeasible_task_stays_pending_and_cancel_ends_it(shared_cluster):
    ref = double.options(resources={"unobtainium": 1}).remote(1)
    ready, _ = ray.wait([ref], timeout=1.0)
    assert ready == []
    ray.cancel(ref)
    with pytest.raises(TaskCancelledError):
        ray.get(ref, timeout=10)


def test_cancel_interrupts_a_running_task(shared_cluster):
    ref = interruptible_sleep.remote(60)
    time.sleep(0.5)
    ray.cancel(ref)
    with pytest.raises(TaskCancelledError):
        ray.get(ref, timeout=10)
    assert ray.get(double.remote(5)) == 10


def test_force_cancel_kills_the_worker_and_the_node_recovers(shared_cluster):
    ref = interruptible_sleep.remote(60)
    time.sleep(0.5)
    ray.cancel(ref, force=True)
    with pytest.raises(TaskCancelledError):
        ray.get(ref, timeout=10)
    assert ray.get([double.remote(i) for i in range(4)], timeout=30) == [0, 2, 4, 6]


def test_max_retries_option_is_accepted(shared_cluster):
    assert ray.get(double.options(max_retries=0).remote(1)) == 2
