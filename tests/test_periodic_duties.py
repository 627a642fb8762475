"""Periodic duties of the parts (``PartActor.every``) survive a round that raises."""

from __future__ import annotations

import time
from typing import Any

import pytest
from thespian.actors import ActorSystem

from babyray.actors.base import PartActor


class Flaky(PartActor):
    """A duty that raises in its first round; answers "count" with the rounds it ran."""

    component = "test-flaky"
    timers = {"tick": "on_tick"}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.rounds = 0

    def receiveMessage(self, message: Any, sender: Any) -> Any:
        if message == "start":
            self.every(0.05, "tick")
            self.send(sender, "started")
            return None
        if message == "count":
            self.send(sender, self.rounds)
            return None
        if message == "stop":
            self.stop_timer("tick")
            self.send(sender, "stopped")
            return None
        return super().receiveMessage(message, sender)

    def on_tick(self, msg: Any, sender: Any) -> None:
        self.rounds += 1
        if self.rounds == 1:
            raise RuntimeError("first round fails")


@pytest.fixture
def system():
    asys = ActorSystem("simpleSystemBase", transientUnique=True)
    try:
        yield asys
    finally:
        asys.shutdown()


def _rounds(system: ActorSystem, actor: Any) -> int:
    return system.ask(actor, "count", 5)


def test_duty_keeps_running_after_a_round_raises(system):
    actor = system.createActor(Flaky)
    assert system.ask(actor, "start", 5) == "started"
    deadline = time.monotonic() + 10
    while _rounds(system, actor) < 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _rounds(system, actor) >= 4  # round 1 raised; rounds 2.. still ran


def test_stopped_duty_does_not_run_again(system):
    actor = system.createActor(Flaky)
    system.ask(actor, "start", 5)
    deadline = time.monotonic() + 10
    while _rounds(system, actor) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert system.ask(actor, "stop", 5) == "stopped"
    time.sleep(0.2)  # a round already due may still run once
    stopped_at = _rounds(system, actor)
    time.sleep(0.5)
    assert _rounds(system, actor) == stopped_at
