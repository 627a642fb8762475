# https://docs.ray.io/en/latest/ray-core/patterns/actor-sync.html
# An async SignalActor holds four tasks until the driver sends the signal.
import asyncio

import babyray as ray


# num_cpus=0: the actor mostly blocks on I/O.
@ray.remote(num_cpus=0)
class SignalActor:
    def __init__(self):
        self.ready_event = asyncio.Event()

    def send(self, clear=False):
        self.ready_event.set()
        if clear:
            self.ready_event.clear()

    async def wait(self, should_wait=True):
        if should_wait:
            await self.ready_event.wait()


@ray.remote
def wait_and_go(signal):
    ray.get(signal.wait.remote())

    print("go!")


signal = SignalActor.remote()
tasks = [wait_and_go.remote(signal) for _ in range(4)]
print("ready...")
print("set..")
ray.get(signal.send.remote())

# Tasks are unblocked.
ray.get(tasks)
