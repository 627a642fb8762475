"""Resource arithmetic on dicts like ``{"CPU": 2, "GPU": 0, "custom": 1}``, and a node's pool."""

from __future__ import annotations


def fits(available: dict, request: dict) -> bool:
    return all(available.get(name, 0.0) >= amount - 1e-9 for name, amount in request.items() if amount > 0)


def acquire(available: dict, request: dict) -> None:
    for name, amount in request.items():
        available[name] = available.get(name, 0.0) - amount


def release(available: dict, request: dict) -> None:
    for name, amount in request.items():
        available[name] = available.get(name, 0.0) + amount


class ResourcePool:
    """A node's resources: ``total`` and what is ``available`` of it now.

    ``available`` may go below zero for a moment: a worker back from ``get`` takes its CPU
    again even if it was lent meanwhile, as in Ray. Placement-group bundles change both dicts
    (babyray.actors.bundles works on them directly).
    """

    def __init__(self, total: dict[str, float]) -> None:
        self.total: dict[str, float] = dict(total)
        self.available: dict[str, float] = dict(total)

    def fits_now(self, request: dict) -> bool:
        return fits(self.available, request)

    def fits_ever(self, request: dict) -> bool:
        """Whether the node could run ``request`` at all (with nothing else running)."""
        return fits(self.total, request)

    def acquire(self, request: dict) -> None:
        acquire(self.available, request)

    def release(self, request: dict) -> None:
        release(self.available, request)

    def cpus(self) -> int:
        """Whole CPUs of the node, at least one (the size of its pool of task workers)."""
        return max(1, int(self.total.get("CPU", 1)))
