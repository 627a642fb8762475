# https://docs.ray.io/en/latest/ray-core/actors/async_api.html#threaded-actors
import babyray as ray


@ray.remote
class ThreadedActor:
    def task_1(self):
        print("I'm running in a thread!")

    def task_2(self):
        print("I'm running in another thread!")


a = ThreadedActor.options(max_concurrency=2).remote()
ray.get([a.task_1.remote(), a.task_2.remote()])


# Async functions cannot be remote tasks; wrap them in a sync task that runs them.
async def f():
    return "ran"


@ray.remote
def wrapper():
    import asyncio

    return asyncio.run(f())


print(ray.get(wrapper.remote()))
