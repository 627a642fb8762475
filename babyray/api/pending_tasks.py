"""A task or actor call waiting for its top-level ObjectRef arguments, and the scan that finds them.

Both kinds of submission (``task_submission`` and ``actor_calls``) scan a spec with
``ref_arguments``, make one ``PendingTask`` and ``resolve`` it: each argument's value record
replaces its ref in the spec (as a ValueArg) when it is known; the first that is an error
becomes the task's ``failed``. No I/O: lookups go to the process's ``OwnerTable``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from babyray.api.arguments import arg_resolver
from babyray.api.object_ref import ObjectRef
from babyray.protocol import values as vm

if TYPE_CHECKING:
    from babyray.api.owner_table import OwnerTable

Dependency = tuple[Any, Any, ObjectRef]  # (container: spec.args or spec.kwargs, slot, ref)


def ref_arguments(spec: vm.TaskSpec) -> list[Dependency]:
    """The top-level ObjectRef arguments of ``spec``: ``(container, slot, ref)``, args first."""
    deps: list[Dependency] = [(spec.args, i, a) for i, a in enumerate(spec.args) if isinstance(a, ObjectRef)]
    if spec.kwargs:
        deps += [(spec.kwargs, k, a) for k, a in spec.kwargs.items() if isinstance(a, ObjectRef)]
    return deps


@dataclass(slots=True)
class PendingTask:
    """A submitted task or actor call; sendable once ``unresolved`` is 0 (failed instead if ``failed``)."""

    spec: vm.TaskSpec
    unresolved: int
    failed: Any = None  # vm.ErrorValue: the error of the first argument that failed

    def resolve(self, deps: list[Dependency], objects: "OwnerTable", when_ready: Callable[[], None]) -> None:
        """Look up each of ``deps`` (``ref_arguments(self.spec)``) in ``objects`` (locked by the caller);
        ``when_ready()`` once the last is known."""
        for container, slot, ref in deps:
            objects.lookup(ref, arg_resolver(self, container, slot, ref.id, when_ready))
