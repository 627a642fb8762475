"""Options of tasks and actors: a value of the wrong type or out of range is refused where it is
given (``@remote`` or ``.options()``), with Ray's exception type and the option's name, and a
cluster that was handed one keeps running what is valid."""

from __future__ import annotations

import pytest

import babyray as ray


def _task():
    return 1


class _Actor:
    def ping(self):
        return "pong"


TASK_REFUSED = [
    ("num_cpus", "two", TypeError),
    ("num_cpus", -1, ValueError),
    ("num_gpus", -0.5, ValueError),
    ("memory", "lots", TypeError),
    ("memory", -1, ValueError),
    ("max_retries", 1.5, TypeError),
    ("max_retries", -2, ValueError),
    ("max_calls", -1, ValueError),
    ("max_calls", "1", TypeError),
    ("name", 3, TypeError),
    ("retry_exceptions", "yes", TypeError),
    ("retry_exceptions", [ValueError, "KeyError"], ValueError),
]
ACTOR_REFUSED = [
    ("max_restarts", -2, ValueError),
    ("max_restarts", True, TypeError),
    ("max_task_retries", "3", TypeError),
    ("max_concurrency", -1, ValueError),
    ("max_concurrency", 2.0, TypeError),
    ("lifetime", "forever", ValueError),
    ("get_if_exists", "yes", TypeError),
    ("memory", [1], TypeError),
]
TASK_ACCEPTED = [("max_retries", -1), ("memory", 0), ("retry_exceptions", [KeyError])]
ACTOR_ACCEPTED = [
    ("max_restarts", -1),
    ("max_task_retries", -1),
    ("lifetime", "non_detached"),
    ("memory", 1e6),
]


@pytest.mark.parametrize(
    ("target", "option", "value", "error"),
    [(_task, *case) for case in TASK_REFUSED] + [(_Actor, *case) for case in ACTOR_REFUSED],
)
def test_an_option_of_the_wrong_type_or_range_is_refused_naming_it(target, option, value, error):
    with pytest.raises(error, match=option):
        ray.remote(**{option: value})(target)
    with pytest.raises(error, match=option):
        ray.remote(target).options(**{option: value})


def test_get_if_exists_without_a_name_is_refused_before_anything_starts():
    assert not ray.is_initialized()
    with pytest.raises(ValueError, match="name must be specified to use get_if_exists"):
        ray.remote(_Actor).options(get_if_exists=True).remote()
    assert not ray.is_initialized()


def test_valid_options_run_and_the_cluster_keeps_serving_after_refusals(cluster):
    for option, value, _ in TASK_REFUSED:
        with pytest.raises((TypeError, ValueError)):
            ray.remote(_task).options(**{option: value})
    task = ray.remote(_task)
    assert ray.get(
        [task.options(**{option: value}).remote() for option, value in TASK_ACCEPTED], timeout=60
    ) == [1] * len(TASK_ACCEPTED)
    actors = [ray.remote(_Actor).options(**{option: value}).remote() for option, value in ACTOR_ACCEPTED]
    assert ray.get([actor.ping.remote() for actor in actors], timeout=60) == ["pong"] * len(actors)
    named = ray.remote(_Actor).options(name="the-one", get_if_exists=True).remote()
    again = ray.remote(_Actor).options(name="the-one", get_if_exists=True).remote()
    assert ray.get(again.ping.remote(), timeout=60) == "pong"
    assert named == again  # the same actor: handles compare by actor id
