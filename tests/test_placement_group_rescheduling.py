"""A placement group whose bundle was on a node that dies, on a real multi-host cluster (network
namespaces): Ray's fault tolerance for placement groups, "the placement group state becomes
RESCHEDULING and the bundles on the dead node are rescheduled on other nodes when resources allow".

The group has a bundle on the head and one on ``m1``; ``m2`` is kept full by an actor. When ``m1``
is killed the group is RESCHEDULING and stays so while no node has room (unrelated tasks still
run); once the actor on ``m2`` is gone the lost bundle is reserved there, the group is CREATED
again and a task in that bundle runs on ``m2``.
"""

from __future__ import annotations

from test_fault_tolerance_multihost import cluster, run_with_kill  # noqa: F401 (cluster: a fixture)


def test_a_bundle_lost_with_a_node_is_placed_again_when_a_node_has_room(cluster, tmp_path):  # noqa: F811
    output = run_with_kill(
        cluster,
        tmp_path,
        """
        from babyray.util import placement_group, placement_group_table
        from babyray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        @ray.remote(num_cpus=2, resources={"on_m2": 1})
        class Filler:
            def node(self):
                return ray.get_runtime_context().get_node_id()

        @ray.remote(num_cpus=0)
        def node():
            return ray.get_runtime_context().get_node_id()

        def state_when(pg, done):
            deadline = time.monotonic() + 60
            while not done(placement_group_table(pg)):
                assert time.monotonic() < deadline, placement_group_table(pg)
                time.sleep(0.2)
            return placement_group_table(pg)

        filler = Filler.remote()
        m2 = ray.get(filler.node.remote(), timeout=60)
        pg = placement_group([{"CPU": 1}, {"CPU": 1}], strategy="STRICT_SPREAD")
        ray.get(pg.ready(), timeout=60)
        placed = placement_group_table(pg)["bundles_to_node_id"]
        lost = next(index for index, where in placed.items() if where == m1)
        assert m2 not in placed.values(), placed

        wait_for_kill(MARKERS)
        table = state_when(pg, lambda t: t["state"] != "CREATED")
        assert table["state"] == "RESCHEDULING" and lost not in table["bundles_to_node_id"], table
        assert ray.get(node.remote(), timeout=60) != m1  # unrelated work is not held up
        table = placement_group_table(pg)
        # no room yet
        assert table["state"] == "RESCHEDULING" and lost not in table["bundles_to_node_id"], table

        ray.kill(filler)
        table = state_when(pg, lambda t: t["state"] == "CREATED")
        assert table["bundles_to_node_id"][lost] == m2, table
        assert table["bundles_to_node_id"][1 - lost] == placed[1 - lost], table
        in_bundle = node.options(scheduling_strategy=PlacementGroupSchedulingStrategy(pg, lost)).remote()
        assert ray.get(in_bundle, timeout=60) == m2
        print("REPLACED on m2")
    """,
    )
    assert "REPLACED on m2" in output
