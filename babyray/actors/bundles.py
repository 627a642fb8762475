"""Resources of placement-group bundles: their names, and a node's ledger of reserved bundles.

As in Ray, a committed bundle ``i`` of group ``g`` with ``{"CPU": 2}`` takes 2 CPU from the
node and gives it the resources ``CPU_group_i_g: 2`` (this bundle), ``CPU_group_g: 2`` (any
bundle of the group on the node) and ``bundle_group_i_g`` / ``bundle_group_g`` (1000 each, a
marker so that zero-resource tasks find the bundle). A task in the group asks for these names
instead of ``CPU``, so the ordinary resource arithmetic (babyray.actors.resources) places it
on the bundle's node and keeps it within the bundle.

Reservation is two-phase: ``prepare`` takes the bundles' resources from the node (or refuses
if they are not free), ``commit`` adds the group's resources, ``give_back`` undoes either.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from babyray.actors.resources import acquire, fits, release

BUNDLE_MARKER = "bundle"
MARKER_AMOUNT = 1000.0
MARKER_REQUEST = 0.001  # what one task or actor in a bundle takes of the marker


def indexed_name(resource: str, pg_id: str, index: int) -> str:
    return f"{resource}_group_{index}_{pg_id}"


def wildcard_name(resource: str, pg_id: str) -> str:
    return f"{resource}_group_{pg_id}"


def is_group_resource(name: str) -> bool:
    return "_group_" in name


def uses_group(resources: dict, pg_id: str) -> bool:
    """Whether a request (or a worker's held resources) is on bundles of group ``pg_id``."""
    suffix = f"_{pg_id}"
    return any(name.endswith(suffix) and is_group_resource(name) for name in resources)


def bundle_request(request: dict, pg_id: str, index: int) -> dict:
    """The resources a task or actor asking ``request`` takes in bundle ``index`` (-1: any)."""
    out = {}
    for name, amount in request.items():
        if amount > 0:
            out[wildcard_name(name, pg_id)] = amount
            if index >= 0:
                out[indexed_name(name, pg_id, index)] = amount
    out[wildcard_name(BUNDLE_MARKER, pg_id)] = MARKER_REQUEST
    if index >= 0:
        out[indexed_name(BUNDLE_MARKER, pg_id, index)] = MARKER_REQUEST
    return out


def group_resources(pg_id: str, bundles: dict[int, dict]) -> dict:
    """The resources committing ``bundles`` (index -> bundle) adds to one node."""
    out: dict[str, float] = {}
    for index, bundle in bundles.items():
        for name, amount in {**bundle, BUNDLE_MARKER: MARKER_AMOUNT}.items():
            if amount <= 0:
                continue
            out[indexed_name(name, pg_id, index)] = float(amount)
            out[wildcard_name(name, pg_id)] = out.get(wildcard_name(name, pg_id), 0.0) + float(amount)
    return out


def bundles_total(bundles: dict[int, dict]) -> dict:
    total: dict[str, float] = {}
    for bundle in bundles.values():
        release(total, bundle)
    return total


@dataclass
class BundleLedger:
    """The bundles one node holds, prepared or committed, by group id."""

    prepared: dict[str, dict[int, dict]] = field(default_factory=dict)
    committed: dict[str, dict[int, dict]] = field(default_factory=dict)

    def prepare(self, pg_id: str, bundles: dict[int, dict], available: dict) -> bool:
        """Take the bundles' resources from ``available`` if they are all free."""
        if pg_id in self.prepared or pg_id in self.committed:
            return True  # a repeated request
        need = bundles_total(bundles)
        if not fits(available, need):
            return False
        acquire(available, need)
        self.prepared[pg_id] = dict(bundles)
        return True

    def commit(self, pg_id: str, total: dict, available: dict) -> bool:
        """Give the node the group's resources for its prepared bundles."""
        bundles = self.prepared.pop(pg_id, None)
        if bundles is None:
            return False
        self.committed[pg_id] = bundles
        added = group_resources(pg_id, bundles)
        release(total, added)
        release(available, added)
        return True

    def give_back(self, pg_id: str, total: dict, available: dict) -> bool:
        """Drop the group's bundles: their resources return to the node, the group's go."""
        bundles = self.prepared.pop(pg_id, None)
        committed = bundles is None
        if committed:
            bundles = self.committed.pop(pg_id, None)
        if bundles is None:
            return False
        release(available, bundles_total(bundles))
        if committed:
            for name in group_resources(pg_id, bundles):
                total.pop(name, None)
                available.pop(name, None)
        return True

    def group_ids(self) -> list[str]:
        return [*self.prepared, *self.committed]
