"""ActorPool: spread work over a fixed set of stateful actors.

python examples/actor_pool.py
"""

import babyray as ray
from babyray.util import ActorPool


@ray.remote
class WordCounter:
    """Counts words; each actor remembers how many lines it has seen."""

    def __init__(self):
        self.lines_seen = 0

    def count(self, line):
        self.lines_seen += 1
        return len(line.split())

    def seen(self):
        return self.lines_seen


if __name__ == "__main__":
    ray.init(num_cpus=2)
    lines = ["the quick brown fox", "jumps over", "the lazy dog", "", "and runs away fast"]
    counters = [WordCounter.remote() for _ in range(2)]
    pool = ActorPool(counters)
    counts = list(pool.map(lambda actor, line: actor.count.remote(line), lines))
    print("words per line:", counts)
    print("total words:", sum(counts))
    print("lines per actor:", sorted(ray.get([c.seen.remote() for c in counters])))
    for line in lines[:2]:
        pool.submit(lambda actor, line: actor.count.remote(line), line)
    print("first two again:", sorted([pool.get_next_unordered(), pool.get_next_unordered()]))
    ray.shutdown()
