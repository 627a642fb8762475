"""The one dependency scan and pending-task type of tasks and actor calls, driven without a cluster.

The object table's methods run under the owner's lock: each test holds it, as the owner does.
"""

from __future__ import annotations

import threading
from typing import Iterator

import pytest

from babyray import exceptions, serialization
from babyray.api.object_ref import ObjectRef
from babyray.api.owner_table import OwnerTable
from babyray.api.pending_tasks import PendingTask, ref_arguments
from babyray.protocol import values as vm

ME = "driver-me"


@pytest.fixture
def table() -> Iterator[OwnerTable]:
    table = OwnerTable(ME, threading.RLock(), lambda ref: None)
    with table.lock:
        yield table


def spec_with(args: list, kwargs: dict) -> vm.TaskSpec:
    return vm.TaskSpec(
        task_id="t9",
        job_id="j",
        function_id="f",
        function_name="consume",
        args=args,
        kwargs=kwargs,
        num_returns=1,
        return_ids=["t90000"],
        resources={},
        owner=None,
        owner_id=ME,
    )


def inline(value: object) -> vm.InlineValue:
    return vm.InlineValue(serialization.dumps(value))


def test_the_scan_finds_top_level_refs_in_args_then_kwargs() -> None:
    a, b = ObjectRef("a-0", None, ME), ObjectRef("b-0", None, ME)
    spec = spec_with([inline(1), a, [b]], {"k": b, "plain": inline(2)})
    deps = ref_arguments(spec)
    assert [(slot, ref) for _, slot, ref in deps] == [
        (1, a),
        ("k", b),
    ]  # a ref nested in a list is not scanned
    assert deps[0][0] is spec.args and deps[1][0] is spec.kwargs


def test_a_task_is_ready_once_every_argument_is_known_and_holds_their_values(table: OwnerTable) -> None:
    table.own_pending("a-0", "a")
    table.own_value("b-0", "b", inline("B"))
    a, b = ObjectRef("a-0", None, ME), ObjectRef("b-0", None, ME)
    spec = spec_with([a], {"k": b})
    deps = ref_arguments(spec)
    task = PendingTask(spec, len(deps))
    ready: list[PendingTask] = []
    task.resolve(deps, table, lambda: ready.append(task))
    assert task.unresolved == 1 and ready == []
    table.set_value("a-0", inline("A"))
    assert ready == [task] and task.failed is None
    assert spec.args == [vm.ValueArg("a-0", inline("A"))]
    assert spec.kwargs == {"k": vm.ValueArg("b-0", inline("B"))}


def test_a_failed_argument_fails_the_task_with_a_task_error_naming_it(table: OwnerTable) -> None:
    table.own_value("a-0", "a", vm.ErrorValue(serialization.dumps(ValueError("upstream broke"))))
    spec = spec_with([ObjectRef("a-0", None, ME)], {})
    deps = ref_arguments(spec)
    task = PendingTask(spec, len(deps))
    ready: list[bool] = []
    task.resolve(deps, table, lambda: ready.append(True))
    assert ready == [True]
    error = serialization.deserialize(task.failed.blob)
    assert isinstance(error, exceptions.RayTaskError) and "upstream broke" in str(error)
    assert error.function_name == "consume"
