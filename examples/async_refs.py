"""Async babyray: await refs in asyncio code, and an async actor that serves while it waits.

python examples/async_refs.py
"""

import asyncio

import babyray as ray


@ray.remote
def slow_square(x):
    import time

    time.sleep(0.2)
    return x * x


@ray.remote
class Gateway:
    async def sum_of_squares(self, n):
        return sum(await asyncio.gather(*[slow_square.remote(i) for i in range(n)]))

    async def ping(self):
        return "pong"


async def main():
    gateway = Gateway.remote()
    total = gateway.sum_of_squares.remote(6)
    print("ping while it works:", await gateway.ping.remote())
    print("sum of squares:", await total)
    print("future:", slow_square.remote(12).future().result(timeout=60))


if __name__ == "__main__":
    ray.init(num_cpus=2)
    asyncio.run(main())
    ray.shutdown()
