# https://docs.ray.io/en/latest/ray-core/actors/named-actors.html
# A named actor is found again by name; a detached one too, until ray.kill frees the name.
import babyray as ray


@ray.remote
class Counter:
    pass


counter = Counter.options(name="some_name").remote()
counter = ray.get_actor("some_name")

counter = Counter.options(name="CounterActor", lifetime="detached").remote()
counter = ray.get_actor("CounterActor")

# Detached actors must be destroyed by hand; after that the name may be reused.
ray.kill(counter)
counter = Counter.options(name="CounterActor", lifetime="detached").remote()
ray.kill(counter)
print("named actors ok")
