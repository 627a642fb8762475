# https://docs.ray.io/en/latest/ray-core/scheduling/placement-group.html
# GPUs here are logical resources declared by ray.init(num_gpus=2); no GPU is used.
import time
from pprint import pprint

import babyray as ray
from babyray.util.placement_group import placement_group, placement_group_table, remove_placement_group
from babyray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

# A single-node cluster with 2 CPUs and 2 GPUs.
ray.init(num_cpus=2, num_gpus=2)

# Reserve a placement group of 1 bundle with 1 CPU and 1 GPU.
pg = placement_group([{"CPU": 1, "GPU": 1}])

# Wait until the placement group is created.
ray.get(pg.ready(), timeout=10)

# ray.wait works as well.
ready, unready = ray.wait([pg.ready()], timeout=10)

print(placement_group_table(pg))

# A {"GPU": 2} bundle cannot be created: ready() times out.
pending_pg = placement_group([{"CPU": 1}, {"GPU": 2}])
try:
    ray.get(pending_pg.ready(), timeout=5)
except Exception as e:
    print("Cannot create a placement group because {'GPU': 2} bundle cannot be created.")
    print(e)


@ray.remote(num_cpus=1)
class Actor:
    def __init__(self):
        pass

    def ready(self):
        pass


# Create an actor in the placement group.
actor = Actor.options(
    scheduling_strategy=PlacementGroupSchedulingStrategy(
        placement_group=pg,
    )
).remote()

ray.get(actor.ready.remote(), timeout=10)


@ray.remote(num_cpus=0, num_gpus=1)
class GPUActor:
    def __init__(self):
        pass

    def ready(self):
        pass


# A GPU actor on bundle 0.
actor2 = GPUActor.options(
    scheduling_strategy=PlacementGroupSchedulingStrategy(
        placement_group=pg,
        placement_group_bundle_index=0,
    )
).remote()

ray.get(actor2.ready.remote(), timeout=10)

# Removal is asynchronous.
remove_placement_group(pg)

time.sleep(1)
pprint(placement_group_table(pg))

# Two bundles packed on the same node.
pg = placement_group([{"CPU": 1}, {"GPU": 1}], strategy="STRICT_PACK")
remove_placement_group(pg)

# A detached placement group survives the job.
pg = placement_group([{"CPU": 1}], lifetime="detached", name="global_name")
ray.get(pg.ready())
remove_placement_group(pg)

pg = placement_group([{"CPU": 1}], name="global_name")
ray.get(pg.ready())

# Retrieve it by its name.
pg = ray.util.get_placement_group("global_name")
print("found by name:", placement_group_table(pg)["name"])
