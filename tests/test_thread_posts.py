"""Messages a part's threads post (``PartActor.post_from_thread``) leave whether or not the
loop waits for them in its turn (``wait_in_turn``), on a real multiproc TCP actor system."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from thespian.actors import ActorSystem, WatchMessage

from babyray.actors import thespian_setup  # noqa: F401  (babyray's Thespian patches, as in every part)
from babyray.actors.base import PartActor
from babyray.cluster import free_port


class Relay(PartActor):
    """("work", when, wait): a thread answers "done" ``when`` ("before": before the turn's
    wait begins; "during": once it has begun; "after": 0.3 s later) while the turn waits up to
    ``wait`` seconds for it; "pipe_turns": how many turns the wake pipe started."""

    component = "test-relay"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.enable_thread_posts()
        self.pipe_turns = 0

    handlers = {tuple: "on_work", str: "on_pipe_turns"}

    def receiveMessage(self, message: Any, sender: Any) -> Any:
        if isinstance(message, WatchMessage) and self._wake_r in message.ready:
            self.pipe_turns += 1
        return super().receiveMessage(message, sender)

    def on_work(self, message: tuple, sender: Any) -> None:
        _, when, wait = message
        since = self.thread_wakes()
        thread = threading.Thread(target=self._answer, args=(sender, when), daemon=True)
        thread.start()
        if when == "before":
            thread.join()
        self.wait_in_turn(wait, since)

    def on_pipe_turns(self, message: str, sender: Any) -> None:
        self.post(sender, self.pipe_turns)

    def _answer(self, sender: Any, when: str) -> None:
        if when == "during":
            while not self._waiting_in_turn:
                time.sleep(0.001)
        elif when == "after":
            time.sleep(0.3)
        self.post_from_thread(sender, "done")


@pytest.fixture
def system() -> Iterator[ActorSystem]:
    asys = ActorSystem("multiprocTCPBase", {"Admin Port": free_port()}, transientUnique=True)
    try:
        yield asys
    finally:
        asys.shutdown()


def test_a_post_during_the_wait_leaves_in_the_same_turn(system: ActorSystem) -> None:
    relay = system.createActor(Relay)
    for _ in range(5):
        started = time.monotonic()
        assert system.ask(relay, ("work", "during", 5.0), 10) == "done"
        assert time.monotonic() - started < 4  # the wait ended at the post, not at its limit
    assert system.ask(relay, "pipe_turns", 10) == 0


def test_a_post_before_the_wait_ends_it_at_once(system: ActorSystem) -> None:
    relay = system.createActor(Relay)
    for _ in range(5):
        started = time.monotonic()
        assert system.ask(relay, ("work", "before", 5.0), 10) == "done"
        assert time.monotonic() - started < 4  # the wait did not wait for a post already made


def test_a_post_after_the_wait_still_wakes_the_loop(system: ActorSystem) -> None:
    relay = system.createActor(Relay)
    assert system.ask(relay, ("work", "after", 0.01), 10) == "done"
    assert system.ask(relay, "pipe_turns", 10) == 1
