"""multiprocessing.Pool's API on babyray actors: an existing Pool program, distributed.
The first Pool starts a local cluster (babyray.init is not called here).

    python examples/multiprocessing_pool.py
"""

from babyray.util.multiprocessing import Pool


def collatz_steps(n):
    steps = 0
    while n != 1:
        n = n // 2 if n % 2 == 0 else 3 * n + 1
        steps += 1
    return steps


if __name__ == "__main__":
    with Pool(processes=2) as pool:
        steps = pool.map(collatz_steps, range(1, 31))
        print("longest chain below 31 starts at", steps.index(max(steps)) + 1, "with", max(steps), "steps")
        print("imap:", list(pool.imap(collatz_steps, [6, 7, 8])))
        print("apply_async:", pool.apply_async(collatz_steps, (27,)).get(timeout=60))
