# https://docs.ray.io/en/latest/ray-more-libs/multiprocessing.html
from babyray.util.multiprocessing import Pool


def f(index):
    return index


pool = Pool()
for result in pool.map(f, range(100)):
    print(result)
