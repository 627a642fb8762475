# https://docs.ray.io/en/latest/ray-core/patterns/nested-ray-get.html
import babyray as ray


@ray.remote
def f():
    return 1


@ray.remote
def pass_via_nested_ref(refs):
    print(sum(ray.get(refs)))


@ray.remote
def pass_via_direct_arg(*args):
    print(sum(args))


# Anti-pattern: nested refs need a ray.get in the nested task.
ray.get(pass_via_nested_ref.remote([f.remote() for _ in range(3)]))

# Better: pass refs as direct arguments, unpacked with *args.
ray.get(pass_via_direct_arg.remote(*[f.remote() for _ in range(3)]))
