# https://docs.ray.io/en/latest/ray-core/tasks/generators.html (num_returns="dynamic")
# Expected (from the page): exit 0 (the extra value and the error are only logged).
# A generator that yields more values than num_returns and then raises: the page says the
# extra values and the error are only logged, the declared returns hold the values.
import babyray as ray


@ray.remote
def generator():
    for i in range(2):
        yield i
    raise Exception("error")


# Yielding more values than num_returns only logs an error.
ref1, ref2 = generator.options(num_returns=2).remote()
assert ray.get([ref1, ref2]) == [0, 1]
