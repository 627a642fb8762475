# https://docs.ray.io/en/latest/ray-core/actors/async_api.html#objectrefs-as-asyncio-futures
# ObjectRefs are awaitable, convert to asyncio futures and to concurrent.futures futures.
import asyncio
import concurrent.futures

import babyray as ray


@ray.remote
def some_task():
    return 1


ray.get(some_task.remote())
ray.wait([some_task.remote()])


async def main():
    print("awaited:", await some_task.remote())
    ref = some_task.remote()
    fut: asyncio.Future = asyncio.wrap_future(ref.future())
    await asyncio.wait([fut])
    print("wrapped future:", fut.result())


asyncio.run(main())

refs = [some_task.remote() for _ in range(4)]
futs = [ref.future() for ref in refs]
for fut in concurrent.futures.as_completed(futs):
    assert fut.done()
    print(fut.result())
