# https://docs.ray.io/en/latest/ray-core/ray-generator.html#using-ray-generator-with-asyncio
# async for over a streaming generator, dropping a generator early, two consumers in one loop.
import asyncio
import time

import babyray as ray


@ray.remote
def task():
    for i in range(5):
        time.sleep(1)
        yield i


async def main():
    async for ref in task.remote():
        print(await ref)


asyncio.run(main())

# Garbage collection: deleting the generator releases what it has not returned yet.
gen = task.remote()
ref1 = next(gen)
del gen


async def async_task():
    async for ref in task.remote():
        print(await ref)


async def two_consumers():
    t1 = async_task()
    t2 = async_task()
    await asyncio.gather(t1, t2)


asyncio.run(two_consumers())
