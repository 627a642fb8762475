# https://docs.ray.io/en/latest/ray-core/objects.html#passing-object-arguments
# Top-level ObjectRef arguments are de-referenced: the task sees the values.
import babyray as ray


@ray.remote
def echo(a: int, b: int, c: int):
    """Prints its input values to stdout."""
    print(a, b, c)


# Literal values: prints "1 2 3".
ray.get(echo.remote(1, 2, 3))

a, b, c = ray.put(1), ray.put(2), ray.put(3)
# Refs passed at top level: the task sees the values, prints "1 2 3" as well.
ray.get(echo.remote(a, b, c))
