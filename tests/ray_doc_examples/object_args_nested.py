# https://docs.ray.io/en/latest/ray-core/objects.html#passing-object-arguments
# Refs nested in a list are not de-referenced: the task sees the refs and gets them itself.
import babyray as ray


@ray.remote
def echo_and_get(x_list):  # List[ObjectRef]
    """Prints its input values to stdout."""
    print("args:", x_list)
    print("values:", ray.get(x_list))


a, b, c = ray.put(1), ray.put(2), ray.put(3)
# -> prints args: [ObjectRef(...), ObjectRef(...), ObjectRef(...)]
#           values: [1, 2, 3]
ray.get(echo_and_get.remote([a, b, c]))
