# https://docs.ray.io/en/latest/ray-core/namespaces.html
# Expected (from the page): the namespace given to init() is the job's ("Will print namespace name").
# The page's first snippet, then the print of its "get the current namespace" snippet; the snippets
# that start a cluster with the `ray` command and connect through Ray Client wait in failing/namespaces_ray_client.py.
import babyray as ray

ray.init(namespace="hello")

print(ray.get_runtime_context().namespace)

ray.shutdown()
