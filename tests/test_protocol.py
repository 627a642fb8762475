"""The message protocol's rules: requests name their replies, every reply reaches the request
waiting for it in a CoreClient, messages are frozen, and a retry makes a new TaskSpec."""

from __future__ import annotations

import dataclasses
import importlib
import pickle
import pkgutil
from typing import Any

import pytest

import babyray.protocol
from babyray.api.core import CoreClient
from babyray.protocol import Reply
from babyray.protocol import objects as om
from babyray.protocol import tasks as tm
from babyray.protocol import values as vm
from babyray.task_failure import take_retry


def _messages() -> list[type]:
    found = []
    for info in pkgutil.iter_modules(babyray.protocol.__path__):
        module = importlib.import_module(f"babyray.protocol.{info.name}")
        found += [
            obj
            for obj in vars(module).values()
            if isinstance(obj, type) and dataclasses.is_dataclass(obj) and obj.__module__ == module.__name__
        ]
    return found


MESSAGES = _messages()
REPLIES = [cls for cls in MESSAGES if issubclass(cls, Reply)]
REQUESTS = [
    cls
    for cls in MESSAGES
    if "req_id" in {f.name for f in dataclasses.fields(cls)} and not issubclass(cls, Reply)
]


def _instance(cls: type, req_id: str = "r1") -> Any:
    others = {f.name: None for f in dataclasses.fields(cls) if f.name != "req_id" and f.init}
    return (
        cls(req_id=req_id, **others)
        if "req_id" in {f.name for f in dataclasses.fields(cls)}
        else cls(**others)
    )


def test_protocol_has_requests_and_replies() -> None:
    assert len(REQUESTS) >= 20 and len(REPLIES) >= 15


@pytest.mark.parametrize("request_type", REQUESTS, ids=lambda cls: cls.__name__)
def test_every_request_names_a_reply_type(request_type: type) -> None:
    """A message with a req_id is a Reply or a request naming its Reply: nothing else is routed."""
    reply = getattr(request_type, "reply", None)
    assert isinstance(reply, type) and issubclass(reply, Reply), request_type
    assert reply in MESSAGES


def test_every_reply_answers_some_request() -> None:
    named = {request_type.reply for request_type in REQUESTS}
    assert set(REPLIES) == named


@pytest.mark.parametrize("cls", MESSAGES, ids=lambda cls: cls.__name__)
def test_messages_are_frozen_slotted_and_pickle_every_field_through_init(cls: type) -> None:
    assert cls.__dataclass_params__.frozen  # type: ignore[attr-defined]
    assert "__slots__" in vars(cls)
    assert "__reduce__" in vars(cls), "its module must end with pickle_through_init(globals())"
    # a distinct value per field: one the pickle left out would come back as its default
    msg = cls(**{f.name: f"value-{i}" for i, f in enumerate(dataclasses.fields(cls))})
    assert pickle.loads(pickle.dumps(msg)) == msg
    for f in dataclasses.fields(cls)[:1]:  # a message without fields has nothing to change
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(msg, f.name, "changed")


class _AnsweringTransport:
    """Answers every request sent through it with ``reply_type``, as the far side would."""

    def __init__(self, reply_type: type) -> None:
        self.reply_type = reply_type
        self.core: CoreClient | None = None

    def send(self, dest: Any, msg: Any) -> None:
        assert self.core is not None
        assert self.core.handle(_instance(self.reply_type, msg.req_id))


# ObjectValues answers GetObjects by filling the borrowed-value cache, and DeadWorkers answers
# an owner's FindDeadWorkers by dropping borrowers: neither a waiting request().
ROUTED_BY_REQUEST = [cls for cls in REPLIES if cls not in (om.ObjectValues, om.DeadWorkers)]


@pytest.mark.parametrize("reply_type", ROUTED_BY_REQUEST, ids=lambda cls: cls.__name__)
def test_core_routes_every_reply_to_its_request(reply_type: type) -> None:
    transport = _AnsweringTransport(reply_type)
    core = CoreClient(transport, "worker-1", "inbox", "node-1", None, None, None, "job-1")
    transport.core = core
    try:
        reply = core.request("dest", lambda req_id: om.GetTransferAddress(req_id), timeout=5)
    finally:
        core.close()
    assert type(reply) is reply_type


def test_core_does_not_take_messages_that_are_not_replies() -> None:
    core = CoreClient(_AnsweringTransport(Reply), "worker-1", "inbox", "node-1", None, None, None, "job-1")
    try:
        assert not core.handle(om.GetTransferAddress("r1"))
    finally:
        core.close()


def _spec(**fields: Any) -> vm.TaskSpec:
    return vm.TaskSpec("t1", "j1", "f1", "fn", [], {}, 1, ["o1"], {"CPU": 1}, None, "w1", **fields)


def test_retry_makes_a_new_spec_and_leaves_the_old_one() -> None:
    spec = _spec(max_retries=1)
    retry = take_retry(spec)
    assert retry is not None and retry.attempt == 1 and spec.attempt == 0
    assert dataclasses.replace(retry, attempt=0) == spec


def test_gpu_ids_make_a_new_spec_only_when_they_change() -> None:
    spec = _spec()
    assert spec.with_gpu_ids(()) is spec
    leased = spec.with_gpu_ids((0, 1))
    assert leased.gpu_ids == (0, 1) and spec.gpu_ids == ()


class _RecordingTransport:
    def __init__(self) -> None:
        self.sent: list[tuple[Any, Any]] = []

    def send(self, dest: Any, msg: Any) -> None:
        self.sent.append((dest, msg))


@pytest.mark.parametrize("finished, attempt", [(True, 0), (False, 1)])
def test_an_owner_runs_a_lost_task_again_spending_a_retry_only_if_it_did_not_finish(
    finished, attempt
) -> None:
    """TasksLost from a dead worker's scheduler (``finished``: its result may not have left the
    worker) resubmits the same attempt; from a dead node, the next one (within max_retries)."""
    transport = _RecordingTransport()
    core = CoreClient(transport, "worker-1", "inbox", "node-1", "scheduler", None, None, "job-1")
    try:
        core.tasks.resubmit(_spec(max_retries=1))
        transport.sent.clear()
        assert core.handle(tm.TasksLost("node-1", ("t1",), "worker w2 died", finished=finished))
        submits = [msg for dest, msg in transport.sent if type(msg) is tm.SubmitTasks]
        assert [(s.task_id, s.attempt) for m in submits for s in m.specs] == [("t1", attempt)]
    finally:
        core.close()
