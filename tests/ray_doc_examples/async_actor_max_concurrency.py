# https://docs.ray.io/en/latest/ray-core/actors/async_api.html#setting-concurrency-in-async-actors
import asyncio

import babyray as ray


@ray.remote
class AsyncActor:
    async def run_task(self):
        print("started")
        await asyncio.sleep(1)  # Network, I/O task here
        print("ended")


actor = AsyncActor.remote()
# All 50 tasks start at once and finish together after about 1 second.
ray.get([actor.run_task.remote() for _ in range(50)])

actor = AsyncActor.options(max_concurrency=10).remote()
# Only 10 tasks run at once; when they finish, the next 10 run.
ray.get([actor.run_task.remote() for _ in range(50)])
