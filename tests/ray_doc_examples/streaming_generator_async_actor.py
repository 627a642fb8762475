# https://docs.ray.io/en/latest/ray-core/ray-generator.html#generators-from-actors
# Expected (from the page): prints 0 1 2 3 4, one per line.
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
