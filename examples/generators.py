"""Streaming results with generator tasks: each value reaches the caller as soon as it is yielded.

python examples/generators.py
"""

from collections import Counter

import numpy as np

import babyray as ray


def is_prime(n):
    return n > 1 and all(n % d for d in range(2, int(n**0.5) + 1))


@ray.remote
def primes_by_block(limit, block):
    """Yield the primes of each block of numbers as soon as the block is searched."""
    for start in range(0, limit, block):
        end = min(start + block, limit)
        yield start, end, [n for n in range(start, end) if is_prime(n)]


@ray.remote
class Tokenizer:
    def tokens(self, text):
        for word in text.split():
            yield word.lower().strip(".,")


@ray.remote(num_returns="dynamic")
def split(array, chunk):
    """The caller does not know how many chunks there will be: one ref per chunk."""
    while len(array):
        yield array[:chunk]
        array = array[chunk:]


if __name__ == "__main__":
    ray.init()
    total = 0
    for ref in primes_by_block.remote(10_000, 2_500):  # an ObjectRefGenerator
        start, end, primes = ray.get(ref)
        total += len(primes)
        print(f"primes in [{start}, {end}): {len(primes)}")
    print(f"primes below 10000: {total}")

    tokenizer = Tokenizer.remote()
    words = [ray.get(ref) for ref in tokenizer.tokens.remote("The quick fox saw the lazy dog. The end.")]
    print(f"most common words: {Counter(words).most_common(2)}")

    chunks = ray.get(split.remote(np.arange(10), 4))  # a DynamicObjectRefGenerator
    print(f"chunk sums: {[int(ray.get(ref).sum()) for ref in chunks]}")
    ray.shutdown()
