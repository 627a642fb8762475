# https://docs.ray.io/en/latest/ray-core/patterns/ray-get-ray-wait-async.html
# Expected (from the page): prints "o1 is 1", "o2 is 2", "o3 is ready" twice; exit 0.
# Blocking ray.get/ray.wait inside async code works but blocks the loop; await refs instead.
# On Python >= 3.11 Ray's own ObjectRef fails in asyncio.wait([ref]) with "AttributeError: ... no
# attribute 'add_done_callback'" (asyncio.wait takes only futures and tasks since 3.11; Ray's open
# issue https://github.com/ray-project/ray/issues/31606); babyray's does the same.
import asyncio
import time

import babyray as ray


@ray.remote
def f(x):
    time.sleep(1)
    return x


async def bad():
    o1 = f.remote(1)
    o2 = f.remote(2)
    o3 = f.remote(3)
    # Blocking calls that block the entire event loop.
    print(f"o1 is {ray.get(o1)}")
    print(f"o2 is {ray.get([o2])[0]}")
    ray.wait([o3])
    print("o3 is ready")


asyncio.run(bad())


async def good():
    o1 = f.remote(1)
    o2 = f.remote(2)
    o3 = f.remote(3)
    print(f"o1 is {await o1}")
    print(f"o2 is {(await asyncio.gather(o2))[0]}")
    await asyncio.wait([o3], return_when=asyncio.FIRST_COMPLETED)
    print("o3 is ready")


asyncio.run(good())
