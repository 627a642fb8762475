"""A Thespian actor or admin learns of every child that exits, even of children that die together.

Handling one child's exit, stock Thespian drops every dead child from its list but reports only
that one; a child that died at the same moment was never reported, and a stopping actor (which
waits for all its children) hung until the driver's shutdown gave up after 10 s.
"""

from __future__ import annotations

import multiprocessing
import time
from types import SimpleNamespace

from thespian.actors import ChildActorExited
from thespian.system.multiprocCommon import ChildInfo, MultiProcReplicator

import babyray.actors.thespian_setup  # noqa: F401 - installs the fix


class _Transport:
    myAddress = "parent"

    def __init__(self) -> None:
        self.sent: list = []

    def scheduleTransmit(self, _token: object, intent: object) -> None:  # noqa: N802 - Thespian's name
        self.sent.append(intent)


def _child(name: str, alive: bool) -> ChildInfo:
    process = multiprocessing.get_context("fork").Process(target=time.sleep, args=(30 if alive else 0,))
    process.start()
    if not alive:
        process.join(10)
    info = ChildInfo(f"local-{name}", "Worker", process, 0)
    info.childRealAddr = name
    return info


def test_children_that_died_with_the_one_handled_are_reported():
    children = [
        _child("a", alive=False),
        _child("b", alive=False),
        _child("c", alive=True),
        _child("d", alive=False),
    ]
    manager = SimpleNamespace(
        _child_procs=list(children),
        transport=_Transport(),
        _checkChildLiveness=MultiProcReplicator._checkChildLiveness,
    )
    try:
        MultiProcReplicator._childExited(manager, "a")  # the exit of "a" is being handled
        reported = [intent.message for intent in manager.transport.sent]
        assert all(isinstance(msg, ChildActorExited) for msg in reported)
        assert sorted(msg.childAddress for msg in reported) == ["b", "d"]
        assert all(intent.targetAddr == "parent" for intent in manager.transport.sent)
        assert [c.childRealAddr for c in manager._child_procs] == ["c"]  # the living child stays listed
    finally:
        children[2].childProc.kill()
        children[2].childProc.join(10)


def test_the_handled_child_is_not_reported_again_under_its_local_address():
    children = [_child("a", alive=False)]
    manager = SimpleNamespace(
        _child_procs=list(children),
        transport=_Transport(),
        _checkChildLiveness=MultiProcReplicator._checkChildLiveness,
    )
    MultiProcReplicator._childExited(manager, "local-a")
    assert manager.transport.sent == [] and manager._child_procs == []
