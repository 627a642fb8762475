# https://docs.ray.io/en/latest/ray-core/patterns/limit-running-tasks.html
# The memory resource limits how many tasks run at once.
import babyray as ray

ray.init()


@ray.remote
def process(file):
    # Actual work would read the file and process the data, using 2G of memory.
    pass


NUM_FILES = 1000
result_refs = []
for i in range(NUM_FILES):
    # By default, process uses 1 CPU and no other resources.
    result_refs.append(process.remote(f"{i}.csv"))
ray.get(result_refs)

result_refs = []
for i in range(NUM_FILES):
    # Now each task reserves 2G of memory, which limits how many run concurrently.
    result_refs.append(process.options(memory=2 * 1024 * 1024 * 1024).remote(f"{i}.csv"))
ray.get(result_refs)
