"""``ray.actor``: the actor classes and handles, and ``exit_actor``."""
from babyray.api.actor import ActorClass, ActorHandle, exit_actor

__all__ = ["ActorClass", "ActorHandle", "exit_actor"]
