"""A first babyray program: tasks, remote recursion, objects and an actor on a local cluster.

python examples/quickstart.py
"""

import numpy as np

import babyray as ray


@ray.remote
def square(x):
    return x * x


@ray.remote
def fib(n):
    if n < 2:
        return n
    return sum(ray.get([fib.remote(n - 1), fib.remote(n - 2)]))


@ray.remote
class Accumulator:
    def __init__(self):
        self.total = 0.0

    def add(self, array):
        self.total += float(array.sum())
        return self.total


def main() -> None:
    ray.init()  # a private single-node cluster on this machine
    print("squares:", ray.get([square.remote(i) for i in range(8)]))
    print("fib(10) by remote recursion:", ray.get(fib.remote(10)))
    big = ray.put(np.ones(10_000_000))  # 80 MB in shared memory, read back without a copy
    accumulator = Accumulator.remote()
    print("actor total:", ray.get([accumulator.add.remote(big) for _ in range(3)])[-1])
    print("cluster:", ray.cluster_resources())
    ray.shutdown()


if __name__ == "__main__":
    main()
