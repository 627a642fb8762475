# https://docs.ray.io/en/latest/ray-core/patterns/global-variables.html
import babyray as ray

ray.init()

global_var = 3


@ray.remote
class Actor:
    def f(self):
        return global_var + 3


actor = Actor.remote()
global_var = 4
# 6, not 7: the driver's change of global_var does not reach the actor's process.
assert ray.get(actor.f.remote()) == 6


@ray.remote
class GlobalVarActor:
    def __init__(self):
        self.global_var = 3

    def set_global_var(self, var):
        self.global_var = var

    def get_global_var(self):
        return self.global_var


@ray.remote
class SharingActor:
    def __init__(self, global_var_actor):
        self.global_var_actor = global_var_actor

    def f(self):
        return ray.get(self.global_var_actor.get_global_var.remote()) + 3


global_var_actor = GlobalVarActor.remote()
actor = SharingActor.remote(global_var_actor)
ray.get(global_var_actor.set_global_var.remote(4))
# 7, as intended.
assert ray.get(actor.f.remote()) == 7
