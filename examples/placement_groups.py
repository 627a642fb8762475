"""Gang scheduling with a placement group: reserve one bundle per trainer and one for a
parameter server, all at once, then run the actors on their bundles.

    python examples/placement_groups.py
"""

import numpy as np

import babyray as ray
from babyray.util import (
    get_current_placement_group,
    placement_group,
    placement_group_table,
    remove_placement_group,
)
from babyray.util.scheduling_strategies import PlacementGroupSchedulingStrategy


@ray.remote(num_cpus=1)
class ParameterServer:
    def __init__(self, size):
        self.weights = np.zeros(size)

    def apply(self, *gradients):
        self.weights -= 0.1 * np.mean(gradients, axis=0)
        return self.weights

    def get(self):
        return self.weights


@ray.remote(num_cpus=1)
class Trainer:
    def __init__(self, seed):
        self.target = np.random.default_rng(seed).normal(size=4)

    def gradient(self, weights):
        return weights - self.target  # of 0.5 * |weights - target|^2

    def in_group(self):
        return get_current_placement_group() is not None


def main():
    ray.init(num_cpus=4)
    pg = placement_group([{"CPU": 1}] * 4, strategy="PACK", name="training")
    ray.get(pg.ready(), timeout=60)
    table = placement_group_table(pg)
    print(f"placement group {table['name']}: {table['state']}, {pg.bundle_count} bundles")
    print(f"CPUs left outside the group: {ray.available_resources().get('CPU', 0.0):g}")

    server = ParameterServer.options(scheduling_strategy=PlacementGroupSchedulingStrategy(pg, 0)).remote(4)
    trainers = [
        Trainer.options(scheduling_strategy=PlacementGroupSchedulingStrategy(pg, i + 1)).remote(seed=i)
        for i in range(3)
    ]
    print(f"trainers in the group: {all(ray.get([t.in_group.remote() for t in trainers]))}")
    weights = ray.get(server.get.remote())
    for _ in range(100):
        weights = ray.get(server.apply.remote(*[t.gradient.remote(weights) for t in trainers]))
    expected = np.mean([np.random.default_rng(i).normal(size=4) for i in range(3)], axis=0)
    print(
        f"weights converged to the trainers' mean target: {bool(np.allclose(weights, expected, atol=1e-3))}"
    )

    remove_placement_group(pg)
    print(f"after removal: {placement_group_table(pg)['state']}")
    ray.shutdown()


if __name__ == "__main__":
    main()
