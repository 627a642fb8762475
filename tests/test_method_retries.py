"""Retry options per actor method, through the public API: ``@ray.method(max_task_retries=...,
retry_exceptions=...)`` wins over the actor's ``max_task_retries``, and
``actor.method.options(...)`` over both. One ``max_task_retries`` counts the retries after an
application exception (those ``retry_exceptions`` names) and after the actor's process died
(only if the actor restarts)."""

from __future__ import annotations

import os
from collections import Counter

import pytest

import babyray as ray
from babyray.exceptions import ActorDiedError, RayActorError


@ray.remote
class Flaky:
    """Each call of ``key`` fails its first ``failures`` attempts with ``error``; the attempts
    are counted per key in the actor's state."""

    def __init__(self):
        self.attempts = Counter()

    def _attempt(self, key, failures, error):
        self.attempts[key] += 1
        if self.attempts[key] <= failures:
            raise error(f"{key}: attempt {self.attempts[key]}")
        return self.attempts[key]

    @ray.method(retry_exceptions=True, max_task_retries=2)
    def retried(self, key, failures, error=ConnectionError):
        return self._attempt(key, failures, error)

    def plain(self, key, failures, error=ConnectionError):
        return self._attempt(key, failures, error)

    @ray.method(retry_exceptions=True)
    def retried_as_the_actor_says(self, key, failures):
        return self._attempt(key, failures, ConnectionError)

    def attempts_of(self, key):
        return self.attempts[key]


def test_a_method_retried_on_exceptions_succeeds_on_its_third_try_and_others_are_not_retried(shared_cluster):
    flaky = Flaky.remote()
    assert ray.get(flaky.retried.remote("a", 2), timeout=60) == 3
    with pytest.raises(ConnectionError, match="b: attempt 1"):
        ray.get(flaky.plain.remote("b", 1), timeout=60)
    assert ray.get(flaky.attempts_of.remote("b"), timeout=60) == 1


def test_the_methods_max_task_retries_bounds_its_retries_then_the_last_exception_is_raised(shared_cluster):
    flaky = Flaky.remote()
    with pytest.raises(ConnectionError, match="c: attempt 3"):
        ray.get(flaky.retried.remote("c", 3), timeout=60)
    assert ray.get(flaky.attempts_of.remote("c"), timeout=60) == 3


def test_without_its_own_max_task_retries_a_method_takes_the_actors(shared_cluster):
    flaky = Flaky.options(max_task_retries=1).remote()
    assert ray.get(flaky.retried_as_the_actor_says.remote("d", 1), timeout=60) == 2
    with pytest.raises(ConnectionError, match="e: attempt 2"):
        ray.get(flaky.retried_as_the_actor_says.remote("e", 2), timeout=60)
    # The actor's max_task_retries alone does not retry application exceptions.
    with pytest.raises(ConnectionError, match="f: attempt 1"):
        ray.get(flaky.plain.remote("f", 1), timeout=60)


def test_options_of_a_call_win_over_the_method_and_the_actor(shared_cluster):
    flaky = Flaky.options(max_task_retries=3).remote()
    with pytest.raises(ConnectionError, match="g: attempt 1"):
        ray.get(flaky.retried.options(max_task_retries=0).remote("g", 1), timeout=60)
    with pytest.raises(ConnectionError, match="h: attempt 1"):
        ray.get(flaky.retried.options(retry_exceptions=False).remote("h", 1), timeout=60)
    assert ray.get(flaky.plain.options(retry_exceptions=True).remote("i", 3), timeout=60) == 4
    assert ray.get(flaky.retried.options(max_task_retries=-1).remote("j", 5), timeout=60) == 6
    assert ray.get([flaky.attempts_of.remote(key) for key in "gh"], timeout=60) == [1, 1]


def test_retry_exceptions_as_a_list_retries_only_those_classes(shared_cluster):
    """A class defined here (no other process can import it) is kept for the caller."""

    class Transient(Exception):
        pass

    @ray.remote
    class Picky:
        def __init__(self):
            self.attempts = Counter()

        @ray.method(retry_exceptions=[Transient, TimeoutError], max_task_retries=-1)
        def work(self, key, failures, error):
            self.attempts[key] += 1
            if self.attempts[key] <= failures:
                raise error(f"{key}: attempt {self.attempts[key]}")
            return self.attempts[key]

    picky = Picky.remote()
    assert ray.get(picky.work.remote("a", 4, Transient), timeout=60) == 5
    assert ray.get(picky.work.remote("b", 1, TimeoutError), timeout=60) == 2
    with pytest.raises(ValueError, match="c: attempt 1"):
        ray.get(picky.work.remote("c", 2, ValueError), timeout=60)
    with pytest.raises(Transient, match="d: attempt 1"):
        ray.get(picky.work.options(retry_exceptions=[KeyError]).remote("d", 1, Transient), timeout=60)


@ray.remote(max_restarts=3, max_task_retries=-1)
class Fragile:
    def pid(self):
        return os.getpid()

    @ray.method(max_task_retries=0)
    def die(self):
        os._exit(1)

    def die_once(self, marker):
        if not os.path.exists(marker):
            open(marker, "w").close()
            os._exit(1)
        return "survived"


def test_a_method_with_max_task_retries_zero_is_not_retried_when_the_process_dies(shared_cluster, tmp_path):
    fragile = Fragile.remote()
    first = ray.get(fragile.pid.remote(), timeout=60)
    with pytest.raises(RayActorError):
        ray.get(fragile.die.remote(), timeout=60)
    # The actor restarted; a method without its own max_task_retries takes the actor's -1.
    assert ray.get(fragile.die_once.remote(str(tmp_path / "died")), timeout=60) == "survived"
    assert ray.get(fragile.pid.remote(), timeout=60) != first


def test_a_call_is_retried_after_a_process_death_only_if_the_actor_restarts(shared_cluster, tmp_path):
    fragile = Fragile.options(max_restarts=0).remote()
    with pytest.raises(ActorDiedError):
        ray.get(fragile.die_once.options(max_task_retries=-1).remote(str(tmp_path / "died")), timeout=60)


def test_a_generator_method_with_retry_options_still_streams(shared_cluster):
    @ray.remote
    class Counting:
        def __init__(self):
            self.tries = 0

        @ray.method(retry_exceptions=True, max_task_retries=1)
        def count(self, n):
            self.tries += 1
            for i in range(n):
                if i == 2 and self.tries == 1:
                    raise ConnectionError("transient")
                yield i

    counting = Counting.remote()
    stream = counting.count.remote(4)
    assert isinstance(stream, ray.ObjectRefGenerator)
    assert [ray.get(ref, timeout=60) for ref in stream] == [0, 1, 2, 3]


REFUSED = [
    ("max_task_retries", "3", TypeError),
    ("max_task_retries", 1.5, TypeError),
    ("max_task_retries", True, TypeError),
    ("max_task_retries", -2, ValueError),
    ("retry_exceptions", "yes", TypeError),
    ("retry_exceptions", ValueError, TypeError),
    ("retry_exceptions", [ValueError, "KeyError"], ValueError),
]


@pytest.mark.parametrize(("option", "value", "error"), REFUSED)
def test_an_invalid_method_option_is_refused_naming_it(option, value, error):
    with pytest.raises(error, match=option):
        ray.method(**{option: value})


def test_an_invalid_call_option_is_refused_and_the_actor_keeps_serving(shared_cluster):
    flaky = Flaky.remote()
    for option, value, error in REFUSED:
        with pytest.raises(error, match=option):
            flaky.retried.options(**{option: value})
    assert ray.get(flaky.retried.remote("a", 0), timeout=60) == 1
