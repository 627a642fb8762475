"""Ray's ``ray.actor`` module: the actor types, for ``from ray.actor import ActorHandle``, and
``exit_actor``."""

from __future__ import annotations

from babyray.api.actor import ActorClass, ActorHandle, ActorMethod, exit_actor, method

__all__ = ["ActorClass", "ActorHandle", "ActorMethod", "exit_actor", "method"]
