# https://docs.ray.io/en/latest/ray-core/tasks/generators.html (num_returns="dynamic")
import numpy as np

import babyray as ray
from babyray import DynamicObjectRefGenerator


@ray.remote(num_returns="dynamic")
def split(array, chunk_size):
    while len(array) > 0:
        yield array[:chunk_size]
        array = array[chunk_size:]


array_ref = ray.put(np.zeros(np.random.randint(1000_000)))
block_size = 1000

# Returns an ObjectRef[DynamicObjectRefGenerator].
dynamic_ref = split.remote(array_ref, block_size)
print(dynamic_ref)

i = -1
ref_generator = ray.get(dynamic_ref)
print(ref_generator)
for i, ref in enumerate(ref_generator):  # noqa: B007 (i counts the blocks after the loop)
    # Each DynamicObjectRefGenerator iteration returns an ObjectRef.
    assert len(ray.get(ref)) <= block_size
num_blocks_generated = i + 1
array_size = len(ray.get(array_ref))
assert array_size <= num_blocks_generated * block_size
print(f"Split array of size {array_size} into {num_blocks_generated} blocks of size {block_size} each.")

# Let dynamic_ref go out of scope so the generated ObjectRefs can be collected.
del dynamic_ref


@ray.remote
def get_size(ref_generator: DynamicObjectRefGenerator):
    print(ref_generator)
    num_elements = 0
    for ref in ref_generator:
        array = ray.get(ref)
        assert len(array) <= block_size
        num_elements += len(array)
    return num_elements


# Passing the ObjectRef[DynamicObjectRefGenerator] to a task.
dynamic_ref = split.remote(array_ref, block_size)
assert array_size == ray.get(get_size.remote(dynamic_ref))

# This also works but needs an extra ray.get on the driver.
ref_generator = ray.get(dynamic_ref)
assert array_size == ray.get(get_size.remote(ref_generator))


@ray.remote
def generator():
    for i in range(2):
        yield i
    raise Exception("error")


ref1, ref2, ref3, ref4 = generator.options(num_returns=4).remote()
assert ray.get([ref1, ref2]) == [0, 1]
# All remaining ObjectRefs contain the error.
try:
    ray.get([ref3, ref4])
except Exception as error:
    print(error)

dynamic_ref = generator.options(num_returns="dynamic").remote()
ref_generator = ray.get(dynamic_ref)
ref1, ref2, ref3 = ref_generator
assert ray.get([ref1, ref2]) == [0, 1]
# With num_returns="dynamic" the exception is stored in the final ObjectRef.
try:
    ray.get(ref3)
except Exception as error:
    print(error)
