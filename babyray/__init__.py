"""babyray: Ray's core API on Thespian actors. ``import babyray as ray``."""

from __future__ import annotations

from typing import Any, Callable

# The submodules too: ray.actor.ActorHandle needs only `import ray`.
from babyray import (
    actor,
    exceptions,
    remote_function,
    runtime_env,
    util,
)
from babyray.api.actor import ActorClass, ActorHandle, get_actor, kill, method
from babyray.api.generator import DynamicObjectRefGenerator, ObjectRefGenerator
from babyray.api.memory import memory_stats, memory_summary
from babyray.api.object_ref import ObjectRef
from babyray.api.public import (
    available_resources,
    cancel,
    cluster_resources,
    get,
    init,
    is_initialized,
    nodes,
    put,
    shutdown,
    wait,
)
from babyray.api.remote_function import RemoteFunction
from babyray.api.runtime_context import get_gpu_ids, get_runtime_context
from babyray.tracing import timeline

__version__ = "0.1.0"


def remote(*args: Any, **options: Any) -> Any:
    """``@remote`` or ``@remote(num_cpus=..., ...)`` on a function makes it a remote function."""
    if len(args) == 1 and not options and callable(args[0]):
        return _make_remote(args[0], {})
    if args:
        raise TypeError("@remote takes either no arguments or keyword options only, e.g. @remote(num_cpus=1)")

    def decorator(target: Callable) -> Any:
        return _make_remote(target, options)

    return decorator


def _make_remote(target: Any, options: dict) -> Any:
    if isinstance(target, type):
        return ActorClass(target, options)
    if not callable(target):
        raise TypeError(f"@remote expects a function or class, got {type(target).__name__}")
    return RemoteFunction(target, options)


__all__ = [
    "ActorClass",
    "ActorHandle",
    "DynamicObjectRefGenerator",
    "ObjectRef",
    "ObjectRefGenerator",
    "actor",
    "available_resources",
    "cancel",
    "cluster_resources",
    "exceptions",
    "get",
    "get_actor",
    "get_gpu_ids",
    "get_runtime_context",
    "init",
    "is_initialized",
    "kill",
    "memory_stats",
    "memory_summary",
    "method",
    "nodes",
    "put",
    "remote",
    "remote_function",
    "runtime_env",
    "shutdown",
    "timeline",
    "util",
    "wait",
]
