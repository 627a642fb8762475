"""Ray's ``max_pending_calls``, ``allow_out_of_order_execution`` and ``accelerator_type``
options: a caller over its limit is refused at ``.remote()`` and loses nothing, a call with
ready arguments passes a call still waiting for its own where the actor allows it (and only
there), and a task or actor asking for an accelerator type runs only where a node offers it."""

from __future__ import annotations

import pytest
from conftest import assert_session_clean, wait_for_file

import babyray as ray

TIMEOUT = 60


@pytest.fixture(scope="module")
def t4_cluster(tmp_path_factory):
    """A 2-CPU node that offers one accelerator of type T4 (as Ray names the resource)."""
    tmp = tmp_path_factory.mktemp("cluster")
    info = ray.init(num_cpus=2, resources={"accelerator_type:T4": 1}, temp_dir=str(tmp)).address_info
    try:
        yield info
    finally:
        ray.shutdown()
    assert_session_clean(info["session_dir"])


@ray.remote
class Recorder:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def wait_for(self, path: str) -> str:
        wait_for_file(path, TIMEOUT)
        self.calls.append("wait_for")
        return "released"

    def note(self, what: str) -> str:
        self.calls.append(what)
        return what

    def seen(self) -> list[str]:
        return self.calls


@ray.remote
def value_when(path: str, value: str) -> str:
    wait_for_file(path, TIMEOUT)
    return value


@ray.remote
def runs() -> str:
    return "ran"


def test_a_call_over_max_pending_calls_is_refused_and_nothing_is_lost(t4_cluster, tmp_path):
    release = str(tmp_path / "release")
    actor = Recorder.options(max_pending_calls=2).remote()
    first = actor.wait_for.remote(release)
    second = actor.note.remote("second")
    with pytest.raises(ray.exceptions.PendingCallsLimitExceeded, match="max_pending_calls"):
        actor.note.remote("refused")
    open(release, "w").close()
    assert ray.get([first, second], timeout=TIMEOUT) == ["released", "second"]
    assert ray.get(actor.note.remote("after"), timeout=TIMEOUT) == "after"  # room again
    assert ray.get(actor.seen.remote(), timeout=TIMEOUT) == ["wait_for", "second", "after"]


def test_out_of_order_execution_lets_a_ready_call_pass_a_waiting_one(t4_cluster, tmp_path):
    release = str(tmp_path / "release")
    in_order = Recorder.remote()
    out_of_order = Recorder.options(allow_out_of_order_execution=True).remote()
    waiting = value_when.remote(release, "late")
    held = [actor.note.remote(waiting) for actor in (in_order, out_of_order)]
    passed = out_of_order.note.remote("early")
    behind = in_order.note.remote("early")
    assert ray.get(passed, timeout=TIMEOUT) == "early"  # its argument was ready: it went first
    ready, _ = ray.wait([behind], timeout=1)
    assert ready == []  # in order, it waits for the call whose argument is not ready yet
    open(release, "w").close()
    assert ray.get(held + [behind], timeout=TIMEOUT) == ["late", "late", "early"]
    assert ray.get(out_of_order.seen.remote(), timeout=TIMEOUT) == ["early", "late"]
    assert ray.get(in_order.seen.remote(), timeout=TIMEOUT) == ["late", "early"]


def test_in_order_execution_is_refused_where_it_cannot_hold(t4_cluster):
    @ray.remote
    class Async:
        async def ping(self) -> str:
            return "pong"

    with pytest.raises(ValueError, match="async actors"):
        Async.options(allow_out_of_order_execution=False).remote()
    with pytest.raises(ValueError, match="multi-threaded actors"):
        Recorder.options(max_concurrency=2, allow_out_of_order_execution=False).remote()
    assert ray.get(Async.remote().ping.remote(), timeout=TIMEOUT) == "pong"


def test_accelerator_type_runs_only_where_a_node_offers_it(t4_cluster):
    assert ray.get(runs.options(accelerator_type="T4").remote(), timeout=TIMEOUT) == "ran"
    actor = Recorder.options(accelerator_type="T4").remote()
    assert ray.get(actor.note.remote("on T4"), timeout=TIMEOUT) == "on T4"
    elsewhere = runs.options(accelerator_type="A100").remote()
    ready, _ = ray.wait([elsewhere], timeout=1)
    assert ready == []  # no node offers an A100: it waits, as in Ray
    ray.cancel(elsewhere)
    with pytest.raises(ray.exceptions.TaskCancelledError):
        ray.get(elsewhere, timeout=TIMEOUT)


def test_the_options_refuse_values_of_the_wrong_type():
    with pytest.raises(ValueError, match="max_pending_calls"):
        Recorder.options(max_pending_calls=-2)
    with pytest.raises(TypeError, match="allow_out_of_order_execution"):
        Recorder.options(allow_out_of_order_execution="yes")
    with pytest.raises(TypeError, match="accelerator_type"):
        runs.options(accelerator_type=4)
