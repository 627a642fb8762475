"""Ray's ``ray.actor`` module: the actor types, for ``from ray.actor import ActorHandle``."""
from __future__ import annotations

from babyray.api.actor import ActorClass, ActorHandle, ActorMethod, method

__all__ = ["ActorClass", "ActorHandle", "ActorMethod", "method"]
