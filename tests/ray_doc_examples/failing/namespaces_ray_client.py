# https://docs.ray.io/en/latest/ray-core/namespaces.html
# Expected (from the page): runs to its end (job 2 and job 3 do not see each other's actors).
# Fails on babyray: it runs the `ray` command (babyray's is `babyray`), connects through Ray Client
# (ray://localhost:10001, a fixed port) and uses init()'s result as a context manager (babyray
# returns a dict). The namespace behaviour it shows is tested in tests/test_namespaces.py.
import subprocess

import babyray as ray

try:
    subprocess.check_output(["ray", "start", "--head"])

    @ray.remote
    class Actor:
        pass

    # Job 1 creates two actors, "orange" and "purple" in the "colors" namespace.
    with ray.init("ray://localhost:10001", namespace="colors"):
        Actor.options(name="orange", lifetime="detached").remote()
        Actor.options(name="purple", lifetime="detached").remote()

    # Job 2 is now connecting to a different namespace.
    with ray.init("ray://localhost:10001", namespace="fruits"):
        # This fails because "orange" was defined in the "colors" namespace.
        try:
            ray.get_actor("orange")
        except ValueError:
            pass

        # This succceeds because the name "orange" is unused in this namespace.
        Actor.options(name="orange", lifetime="detached").remote()
        Actor.options(name="watermelon", lifetime="detached").remote()

    # Job 3 connects to the original "colors" namespace
    context = ray.init("ray://localhost:10001", namespace="colors")

    # This fails because "watermelon" was in the fruits namespace.
    try:
        ray.get_actor("watermelon")
    except ValueError:
        pass

    # This returns the "orange" actor we created in the first job, not the second.
    ray.get_actor("orange")

    # We are manually managing the scope of the connection in this example.
    context.disconnect()
finally:
    subprocess.check_output(["ray", "stop", "--force"])
