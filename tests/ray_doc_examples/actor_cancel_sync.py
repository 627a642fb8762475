# https://docs.ray.io/en/latest/ray-core/actors.html#cancelling-actor-tasks
# Expected (from the page): prints "Actor task was cancelled", then "Actor detected cancellation: True".
# A sync actor method polls ray.get_runtime_context().is_canceled() and stops itself.
# As on the page, the call gets 1 s to start before ray.cancel (a call not yet started is not run).
import time

import babyray as ray


@ray.remote
class SyncActor:
    def __init__(self):
        self.is_canceled = False

    def long_running_method(self):
        """A sync actor method that checks for cancellation periodically."""
        for _ in range(1000):
            if ray.get_runtime_context().is_canceled():
                self.is_canceled = True
                print("Actor task canceled, cleaning up...")
                return "canceled"
            time.sleep(0.01)
        return "completed"

    def get_cancel_status(self):
        return self.is_canceled


actor = SyncActor.remote()
actor_task_ref = actor.long_running_method.remote()

# Wait until task is scheduled.
time.sleep(1)
ray.cancel(actor_task_ref)

try:
    result = ray.get(actor_task_ref)
except ray.exceptions.TaskCancelledError:
    print("Actor task was cancelled")

cancel_status = ray.get(actor.get_cancel_status.remote())
print(f"Actor detected cancellation: {cancel_status}")
