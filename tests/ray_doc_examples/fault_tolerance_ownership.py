# https://docs.ray.io/en/latest/ray-core/fault-tolerance.html#how-to-write-fault-tolerant-ray-applications
# Objects owned by a task's worker vs. objects owned by the driver.
import babyray as ray


@ray.remote
def A():
    x_ref = ray.put(1)
    return x_ref


x_ref = ray.get(A.remote())
# Object x outlives its owner task A.
try:
    print(ray.get(x_ref))
except ray.exceptions.OwnerDiedError:
    pass


@ray.remote
def B():
    return 1


# The driver owns y: it stays reachable for the driver's whole lifetime.
y_ref = B.remote()
print(ray.get(y_ref))


@ray.remote
def A2():
    return 1


@ray.remote
def B2():
    x_ref = A2.remote()
    return x_ref


x_ref = ray.get(B2.remote())
try:
    print(ray.get(x_ref))
except ray.exceptions.OwnerDiedError:
    pass


@ray.remote
def C():
    x_ref = A2.remote()
    # A new object y with the value of x, owned by the driver.
    y = ray.get(x_ref)
    return y


y_ref = C.remote()
print(ray.get(y_ref))


@ray.remote
def D():
    return 1


# Pinned to node 127.0.0.3 (absent here): the task just stays pending.
D.options(resources={"node:127.0.0.3": 1}).remote()
