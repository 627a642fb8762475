# https://docs.ray.io/en/latest/ray-core/fault_tolerance/actors.html#actor-creator-failure
# Expected (from the page): prints "Failed to submit actor call ..." (the child dies with its creator), then "detached_actor.ping: hello".
# A child actor dies with its creator; a detached actor outlives it.
import os
import signal

import babyray as ray

ray.init()


@ray.remote(max_restarts=-1)
class Actor:
    def ping(self):
        return "hello"


@ray.remote
class Parent:
    def generate_actors(self):
        self.child = Actor.remote()
        self.detached_actor = Actor.options(name="actor", lifetime="detached").remote()
        return self.child, self.detached_actor, os.getpid()


parent = Parent.remote()
actor, detached_actor, pid = ray.get(parent.generate_actors.remote())

os.kill(pid, signal.SIGKILL)

try:
    print("actor.ping:", ray.get(actor.ping.remote()))
except ray.exceptions.RayActorError as e:
    print("Failed to submit actor call", e)

try:
    print("detached_actor.ping:", ray.get(detached_actor.ping.remote()))
except ray.exceptions.RayActorError as e:
    print("Failed to submit detached actor call", e)
