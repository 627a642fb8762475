# https://docs.ray.io/en/latest/ray-core/objects/serialization.html#customized-serialization
import threading

import babyray as ray


class A:
    def __init__(self, x):
        self.x = x
        self.lock = threading.Lock()  # could not be serialized!


try:
    ray.get(ray.put(A(1)))  # fail!
except TypeError:
    pass


def custom_serializer(a):
    return a.x


def custom_deserializer(b):
    return A(b)


# Register serializer and deserializer for class A:
ray.util.register_serializer(A, serializer=custom_serializer, deserializer=custom_deserializer)
ray.get(ray.put(A(1)))  # success!

# You can deregister the serializer at any time.
ray.util.deregister_serializer(A)
try:
    ray.get(ray.put(A(1)))  # fail!
except TypeError:
    pass

# Nothing happens when deregister an unavailable serializer.
ray.util.deregister_serializer(A)
