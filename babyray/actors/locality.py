"""Where a task's inputs live: what locality-aware placement weighs (no actor, no imports of
the API, so owners and schedulers alike can use it)."""

from __future__ import annotations

from babyray.ids import NodeID
from babyray.protocol import values as vm

LOCALITY_SPILL_BYTES = 1 << 20  # remote inputs at least this large are worth moving the task for


def stored_inputs(spec: vm.TaskSpec) -> list[tuple[NodeID, int]]:
    """(node id, size) of the task's arguments that live in object stores."""
    found = []
    for arg in list(spec.args) + list(spec.kwargs.values()):
        value = getattr(arg, "value", None)
        if isinstance(value, vm.StoredValue):
            found.append((value.node_id, value.size))
    return found
