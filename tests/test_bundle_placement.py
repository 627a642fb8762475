"""The pure parts of placement groups: how the global scheduler chooses nodes for bundles
(the strategies as Ray's API reference defines them) and how a node's ledger reserves,
commits and frees bundle resources."""

from __future__ import annotations

import pytest

from babyray.actors.bundle_placement import place_bundles
from babyray.actors.bundles import BundleLedger, bundle_request
from babyray.actors.resources import fits

NODES = {"a": {"CPU": 2.0}, "b": {"CPU": 2.0}, "c": {"CPU": 2.0}}


def test_strict_pack_puts_every_bundle_on_one_node_or_none():
    """ "STRICT_PACK: Packs Bundles into one node. The group is not allowed to span multiple nodes.\""""
    nodes = place_bundles([{"CPU": 1}, {"CPU": 1}], "STRICT_PACK", NODES)
    assert len(set(nodes)) == 1
    assert place_bundles([{"CPU": 2}, {"CPU": 1}], "STRICT_PACK", NODES) is None


def test_pack_uses_as_few_nodes_as_it_can_and_spans_nodes_when_it_must():
    """ "PACK: Packs Bundles into as few nodes as possible.\""""
    assert len(set(place_bundles([{"CPU": 1}] * 2, "PACK", NODES))) == 1
    nodes = place_bundles([{"CPU": 1}] * 4, "PACK", NODES)
    assert len(set(nodes)) == 2 and all(nodes.count(n) == 2 for n in set(nodes))
    assert place_bundles([{"CPU": 1}] * 7, "PACK", NODES) is None


def test_spread_uses_distinct_nodes_while_it_can():
    """ "SPREAD: Places Bundles across distinct nodes as even as possible.\""""
    assert sorted(place_bundles([{"CPU": 1}] * 3, "SPREAD", NODES)) == ["a", "b", "c"]
    nodes = place_bundles([{"CPU": 1}] * 5, "SPREAD", NODES)
    assert sorted(nodes.count(n) for n in "abc") == [1, 2, 2]


def test_strict_spread_needs_a_node_per_bundle():
    """ "STRICT_SPREAD: Packs Bundles across distinct nodes.\" - more bundles than nodes wait."""
    assert sorted(place_bundles([{"CPU": 2}] * 3, "STRICT_SPREAD", NODES)) == ["a", "b", "c"]
    assert place_bundles([{"CPU": 1}] * 4, "STRICT_SPREAD", NODES) is None
    # a search, not a greedy pick: the big bundle must get the only node that fits it
    uneven = {"small": {"CPU": 1.0}, "big": {"CPU": 4.0}}
    assert place_bundles([{"CPU": 1}, {"CPU": 4}], "STRICT_SPREAD", uneven) == ["small", "big"]


def test_custom_resources_and_a_bundle_larger_than_any_node():
    """ "A bundle must be able to fit on a single node": 3 CPUs fit the cluster's 6, no node."""
    assert place_bundles([{"CPU": 3}], "PACK", NODES) is None
    gpu = {**NODES, "g": {"CPU": 1.0, "GPU": 1.0}}
    assert place_bundles([{"GPU": 1}, {"CPU": 1}], "STRICT_PACK", gpu) == ["g", "g"]
    with pytest.raises(ValueError, match="unknown placement strategy"):
        place_bundles([{"CPU": 1}], "ANYWHERE", NODES)


def test_the_ledger_reserves_all_or_nothing_and_gives_everything_back():
    total, available = {"CPU": 4.0}, {"CPU": 4.0}
    ledger = BundleLedger()
    assert not ledger.prepare("g1", {0: {"CPU": 3.0}, 1: {"CPU": 2.0}}, available)
    assert available == {"CPU": 4.0}
    assert ledger.prepare("g1", {0: {"CPU": 1.0}, 1: {"CPU": 2.0}}, available)
    assert available == {"CPU": 1.0}
    assert ledger.commit("g1", total, available)
    assert (
        total["CPU_group_g1"] == 3.0 and total["CPU_group_1_g1"] == 2.0 and total["bundle_group_0_g1"] == 1000
    )
    task = bundle_request({"CPU": 2.0}, "g1", 1)
    assert fits(available, task) and not fits(available, bundle_request({"CPU": 2.0}, "g1", 0))
    assert ledger.give_back("g1", total, available)
    assert total == {"CPU": 4.0} and available == {"CPU": 4.0}
    assert not ledger.give_back("g1", total, available)


def test_a_rescheduled_group_places_only_its_lost_bundles_on_nodes_not_holding_the_group():
    """After a node died, the bundles it held go elsewhere; the others stay where they are."""
    nodes = {**NODES, "d": {"CPU": 1.0}}
    assert place_bundles([{"CPU": 1}] * 3, "STRICT_SPREAD", nodes, ("a", "", "c")) in (
        ["a", "b", "c"],
        ["a", "d", "c"],
    )
    assert place_bundles([{"CPU": 2}] * 3, "STRICT_SPREAD", nodes, ("a", "", "c")) == ["a", "b", "c"]
    only_a = {"a": {"CPU": 2.0}}
    assert place_bundles([{"CPU": 1}] * 2, "SPREAD", only_a, ("a", "")) is None  # a node holding the group
    assert place_bundles([{"CPU": 1}] * 3, "PACK", nodes, ("a", "", "")) in (["a", "b", "b"], ["a", "c", "c"])
    assert place_bundles([{"CPU": 1}] * 2, "STRICT_PACK", nodes, ("", "")) is not None  # lost together
