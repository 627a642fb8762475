# https://docs.ray.io/en/latest/ray-core/ray-generator.html#using-ray-wait-with-ray-generator
# ray.wait on a streaming generator; the page imports ObjectRefGenerator from the private
# ray._raylet, this script uses the public name ray.ObjectRefGenerator.
import time

import babyray as ray


@ray.remote
def task():
    for i in range(5):
        time.sleep(5)
        yield i


gen = task.remote()

# The first yield takes 5 seconds: with timeout 0 the generator is not ready.
ready, unready = ray.wait([gen], timeout=0)
print("timeout 0, nothing is ready.")
print(ready)
assert len(ready) == 0
assert len(unready) == 1

# Without a timeout ray.wait returns when the next item is ready.
ready, unready = ray.wait([gen])
print("Wait for 5 seconds. The next item is ready.")
assert len(ready) == 1
assert len(unready) == 0
next(gen)

# The second yield hasn't happened yet.
ready, unready = ray.wait([gen], timeout=0)
print("Wait for 0 seconds. The next item is not ready.")
print(ready, unready)
assert len(ready) == 0
assert len(unready) == 1


@ray.remote
def generator_task():
    for i in range(5):
        time.sleep(5)
        yield i


@ray.remote
def regular_task():
    for _ in range(5):
        time.sleep(5)
    return


gen = [generator_task.remote()]
ref = [regular_task.remote()]
ready, unready = [], [*gen, *ref]
result = []

while unready:
    ready, unready = ray.wait(unready)
    for r in ready:
        if isinstance(r, ray.ObjectRefGenerator):
            try:
                ref = next(r)
                result.append(ray.get(ref))
            except StopIteration:
                pass
            else:
                unready.append(r)
        else:
            result.append(ray.get(r))

print(sorted(result, key=repr))
