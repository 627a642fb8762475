# https://docs.ray.io/en/latest/ray-core/ray-generator.html#generators-from-actors
# An async actor method that is an async generator streams its values like any generator.
import babyray as ray


@ray.remote
class AsyncActor:
    async def f(self):
        for i in range(5):
            yield i


actor = AsyncActor.remote()
for ref in actor.f.remote():
    print(ray.get(ref))
