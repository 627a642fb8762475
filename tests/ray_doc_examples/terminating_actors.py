# https://docs.ray.io/en/latest/ray-core/actors/terminating-actors.html
# ray.kill from outside, ray.actor.exit_actor() from inside; the exiting call's ref raises RayActorError.
import babyray as ray


@ray.remote
class Actor:
    pass


actor_handle = Actor.remote()
ray.kill(actor_handle)


@ray.remote
class ExitingActor:
    def exit(self):
        ray.actor.exit_actor()


actor = ExitingActor.remote()
exit_ref = actor.exit.remote()
try:
    ray.get(exit_ref)
except ray.exceptions.RayActorError:
    print("actor exited: RayActorError")
