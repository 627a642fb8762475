# https://docs.ray.io/en/latest/ray-core/tasks.html
# Remote functions, passing refs, ray.wait, multiple returns, cancel; no ray.init() (auto-start).
import time

import babyray as ray


def normal_function():
    return 1


@ray.remote
def my_function():
    return 1


obj_ref = my_function.remote()
assert ray.get(obj_ref) == 1


@ray.remote
def slow_function():
    time.sleep(10)
    return 1


# Four slow tasks run in the background; nobody waits for them.
for _ in range(4):
    slow_function.remote()


@ray.remote
def function_with_an_argument(value):
    return value + 1


obj_ref1 = my_function.remote()
assert ray.get(obj_ref1) == 1
obj_ref2 = function_with_an_argument.remote(obj_ref1)
assert ray.get(obj_ref2) == 2

object_refs = [slow_function.remote() for _ in range(2)]
ready_refs, remaining_refs = ray.wait(object_refs, num_returns=1, timeout=None)
assert len(ready_refs) == 1 and len(remaining_refs) == 1


@ray.remote
def return_single():
    return 0, 1, 2


object_ref = return_single.remote()
assert ray.get(object_ref) == (0, 1, 2)


@ray.remote(num_returns=3)
def return_multiple():
    return 0, 1, 2


object_ref0, object_ref1, object_ref2 = return_multiple.remote()
assert ray.get(object_ref0) == 0
assert ray.get(object_ref1) == 1
assert ray.get(object_ref2) == 2


@ray.remote(num_returns=3)
def return_multiple_as_generator():
    for i in range(3):
        yield i


a, b, c = return_multiple_as_generator.remote()
assert ray.get([a, b, c]) == [0, 1, 2]


@ray.remote
def blocking_operation():
    time.sleep(10e6)


obj_ref = blocking_operation.remote()
ray.cancel(obj_ref)

try:
    ray.get(obj_ref)
except ray.exceptions.TaskCancelledError:
    print("Object reference was cancelled.")


# Resource declarations from the same page: defined, never called here.
@ray.remote(num_cpus=4, num_gpus=2)
def needs_four_cpus_two_gpus():
    return 1


@ray.remote(num_gpus=0.5)
def h():
    return 1


@ray.remote(resources={"Custom": 1})
def f():
    return 1
