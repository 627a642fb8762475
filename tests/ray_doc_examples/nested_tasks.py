# https://docs.ray.io/en/latest/ray-core/tasks/nested-tasks.html
# Remote functions call remote functions: g returns the inner refs, h gets their values.
import babyray as ray


@ray.remote
def f():
    return 1


@ray.remote
def g():
    # Call f 4 times and return the resulting object refs.
    return [f.remote() for _ in range(4)]


@ray.remote
def h():
    # Call f 4 times, block until those 4 tasks finish, and return the values.
    return ray.get([f.remote() for _ in range(4)])


refs = ray.get(g.remote())
assert all(isinstance(ref, ray.ObjectRef) for ref in refs)
print(ray.get(refs))
print(ray.get(h.remote()))
