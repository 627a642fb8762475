"""Choosing nodes for a placement group's bundles: pure code for the global scheduler.

``place_bundles`` finds a node for every bundle at once, from the nodes' free resources, or
none (the group waits): PACK puts the bundles on as few nodes as it can, STRICT_PACK on one,
SPREAD on as many distinct nodes as it can, STRICT_SPREAD on distinct nodes only. A group
rescheduled after a node died places only the bundles it lost (``kept``).
"""

from __future__ import annotations

from babyray.actors.bundles import bundles_total
from babyray.actors.resources import acquire, fits

STRATEGIES = ("PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD")


def place_bundles(
    bundles: list[dict], strategy: str, available: dict[str, dict], kept: tuple = ()
) -> list[str] | None:
    """The node id of each bundle, in order, or None if the alive nodes' free resources
    (``available``: node id -> free resources) cannot hold them all under ``strategy``.

    ``kept``, if any is set, is the node of each bundle still reserved ("" for one to place):
    only the others are placed, each on a node holding none of the group's bundles (a node
    gives a group's bundles back all together), under ``strategy`` among themselves.
    """
    if any(kept):
        holding = set(kept) - {""}
        lost = [index for index, node in enumerate(kept) if not node]
        others = {node: res for node, res in available.items() if node not in holding}
        if strategy == "STRICT_PACK":
            return None  # its bundles share one node, so they are never lost apart
        chosen = place_bundles([bundles[i] for i in lost], strategy, others)
        if chosen is None:
            return None
        placed = list(kept)
        for index, new_node in zip(lost, chosen, strict=True):
            placed[index] = new_node
        return placed
    free = {node: dict(res) for node, res in sorted(available.items())}
    if strategy == "STRICT_PACK":
        node = _roomiest(free, bundles_total(dict(enumerate(bundles))))
        return None if node is None else [node] * len(bundles)
    if strategy == "PACK":
        node = _roomiest(free, bundles_total(dict(enumerate(bundles))))
        if node is not None:
            return [node] * len(bundles)
        return _greedy(bundles, free, prefer_used=True)
    if strategy == "SPREAD":
        return _greedy(bundles, free, prefer_used=False)
    if strategy == "STRICT_SPREAD":
        return _distinct(bundles, free, [], set())
    raise ValueError(f"unknown placement strategy {strategy!r}; choose from {', '.join(STRATEGIES)}")


def _room(resources: dict) -> float:
    return resources.get("CPU", 0.0) + sum(v for k, v in resources.items() if k != "CPU") * 1e-3


def _roomiest(free: dict[str, dict], need: dict, among: list[str] | None = None) -> str | None:
    fitting = [n for n in (among if among is not None else free) if fits(free[n], need)]
    return max(fitting, key=lambda n: _room(free[n]), default=None)


def _greedy(bundles: list[dict], free: dict[str, dict], prefer_used: bool) -> list[str] | None:
    """Largest bundles first: PACK fills nodes already chosen before new ones; SPREAD picks
    the node with the fewest bundles of the group so far."""
    chosen: dict[int, str] = {}
    count: dict[str, int] = {n: 0 for n in free}
    for index in sorted(range(len(bundles)), key=lambda i: -_room(bundles[i])):
        bundle = bundles[index]
        fitting = [n for n in free if fits(free[n], bundle)]
        if not fitting:
            return None
        if prefer_used:
            node = max(fitting, key=lambda n: (count[n] > 0, _room(free[n])))
        else:
            node = min(fitting, key=lambda n: (count[n], -_room(free[n])))
        acquire(free[node], bundle)
        count[node] += 1
        chosen[index] = node
    return [chosen[i] for i in range(len(bundles))]


def _distinct(bundles: list[dict], free: dict[str, dict], chosen: list[str], used: set) -> list[str] | None:
    """Each bundle on its own node (a small backtracking search)."""
    if len(chosen) == len(bundles):
        return chosen
    bundle = bundles[len(chosen)]
    for node in sorted(
        (n for n in free if n not in used and fits(free[n], bundle)), key=lambda n: -_room(free[n])
    ):
        found = _distinct(bundles, free, [*chosen, node], used | {node})
        if found is not None:
            return found
    return None
