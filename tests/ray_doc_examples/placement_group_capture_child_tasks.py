# https://docs.ray.io/en/latest/ray-core/scheduling/placement-group.html#scheduling-tasks-and-actors-to-placement-groups
# Expected (from the page): prints "Couldn't create a child task!" and the GetTimeoutError of the 5 s get.
# Child tasks follow the parent into its placement group unless they opt out.
import babyray as ray
from babyray.util.placement_group import placement_group
from babyray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

ray.init(num_cpus=2)

pg = placement_group([{"CPU": 2}])
ray.get(pg.ready())


@ray.remote(num_cpus=1)
def child():
    import time

    time.sleep(5)


@ray.remote(num_cpus=1)
def parent():
    # The child is scheduled in the parent's placement group without asking.
    ray.get(child.remote())


# Parent and child use 1 CPU each: the {"CPU": 2} bundle is fully used.
ray.get(
    parent.options(
        scheduling_strategy=PlacementGroupSchedulingStrategy(
            placement_group=pg, placement_group_capture_child_tasks=True
        )
    ).remote()
)


@ray.remote
def parent_opting_out():
    # This child is not scheduled in the parent's placement group.
    ray.get(
        child.options(scheduling_strategy=PlacementGroupSchedulingStrategy(placement_group=None)).remote()
    )


# Times out: both CPUs are reserved by the group and the child must run outside it.
try:
    ray.get(
        parent_opting_out.options(
            scheduling_strategy=PlacementGroupSchedulingStrategy(
                placement_group=pg, placement_group_capture_child_tasks=True
            )
        ).remote(),
        timeout=5,
    )
except Exception as e:
    print("Couldn't create a child task!")
    print(e)
