# https://docs.ray.io/en/latest/ray-core/fault_tolerance/tasks.html#catching-application-level-failures
import babyray as ray


@ray.remote
def f():
    raise Exception("the real error")


@ray.remote
def g(x):
    return


try:
    ray.get(f.remote())
except ray.exceptions.RayTaskError as e:
    print(e)

try:
    ray.get(g.remote(f.remote()))
except ray.exceptions.RayTaskError as e:
    print(e)


class MyException(Exception): ...


@ray.remote
def raises_my_exc():
    raise MyException("a user exception")


try:
    ray.get(raises_my_exc.remote())
except MyException as e:
    print(e)


class MyFinalException(Exception):
    def __init_subclass__(cls, /, *args, **kwargs):
        raise TypeError("Cannot subclass this little exception class.")


@ray.remote
def raises_my_final_exc():
    raise MyFinalException("a *final* user exception")


try:
    ray.get(raises_my_final_exc.remote())
except ray.exceptions.RayTaskError as e:
    assert isinstance(e.cause, MyFinalException)
    print(e)
    print(type(e.cause))
    print(e.cause)
