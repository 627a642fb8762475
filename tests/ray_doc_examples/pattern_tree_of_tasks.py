# https://docs.ray.io/en/latest/ray-core/patterns/tree-of-tasks.html
# Recursive quicksort as a tree of tasks. The page sorts 200000, 4000000 and 8000000 numbers;
# this script sorts 200000, 400000 and 800000 (the only change) to fit a 2-core test machine.
import time

from numpy import random

import babyray as ray

ray.init()


def partition(collection):
    # Use the last element as the pivot
    pivot = collection.pop()
    greater, lesser = [], []
    for element in collection:
        if element > pivot:
            greater.append(element)
        else:
            lesser.append(element)
    return lesser, pivot, greater


def quick_sort(collection):
    if len(collection) <= 200000:  # magic number
        return sorted(collection)
    else:
        lesser, pivot, greater = partition(collection)
        lesser = quick_sort(lesser)
        greater = quick_sort(greater)
    return lesser + [pivot] + greater


@ray.remote
def quick_sort_distributed(collection):
    # Below the magic number, sorting in place beats the cost of more tasks.
    if len(collection) <= 200000:  # magic number
        return sorted(collection)
    else:
        lesser, pivot, greater = partition(collection)
        lesser = quick_sort_distributed.remote(lesser)
        greater = quick_sort_distributed.remote(greater)
        return ray.get(lesser) + [pivot] + ray.get(greater)


for size in [200000, 400000, 800000]:
    print(f"Array size: {size}")
    unsorted = random.randint(1000000, size=(size)).tolist()
    s = time.time()
    expected = quick_sort(list(unsorted))
    print(f"Sequential execution: {(time.time() - s):.3f}")
    s = time.time()
    result = ray.get(quick_sort_distributed.remote(unsorted))
    print(f"Distributed execution: {(time.time() - s):.3f}")
    print("--" * 10)
    assert result == sorted(unsorted) == expected
