# https://docs.ray.io/en/latest/ray-core/actors.html#cancelling-actor-tasks
# Expected (from the page): the actor prints "Actor task canceled." (CancelledError inside the coroutine).
# Cancelling a running async actor task raises asyncio.CancelledError inside it.
import asyncio
import time

import babyray as ray


@ray.remote
class Actor:
    async def f(self):
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            print("Actor task canceled.")


actor = Actor.remote()
ref = actor.f.remote()

# Wait until task is scheduled.
time.sleep(1)
ray.cancel(ref)

try:
    ray.get(ref)
except ray.exceptions.RayTaskError:
    print("Object reference was cancelled.")
