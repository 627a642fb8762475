# https://docs.ray.io/en/latest/ray-core/actors/async_api.html#asyncio-for-actors
# Calls to an async actor interleave on its event loop; ray.get or await their refs.
import asyncio

import babyray as ray

ray.init()


@ray.remote
class AsyncActor:
    # Several invocations of this method can run in the event loop at the same time.
    async def run_concurrent(self):
        print("started")
        await asyncio.sleep(2)  # concurrent workload here
        print("finished")


actor = AsyncActor.remote()

# regular ray.get
ray.get([actor.run_concurrent.remote() for _ in range(4)])


# async ray.get (the page awaits at top level, as in ipython; a script needs asyncio.run)
async def main():
    await actor.run_concurrent.remote()


asyncio.run(main())
