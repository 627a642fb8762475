"""Identifiers of tasks, objects, actors, nodes, workers and jobs.

Ids are short hex strings: cheap to hash, pickle and log. An object made by a task is
named after the task and its return index, so lineage can be found from the object id.
"""

from __future__ import annotations

import os
from typing import NewType

TaskID = NewType("TaskID", str)
ObjectID = NewType("ObjectID", str)
ActorID = NewType("ActorID", str)
NodeID = NewType("NodeID", str)
WorkerID = NewType("WorkerID", str)
JobID = NewType("JobID", str)
FunctionID = NewType("FunctionID", str)

PUT_INDEX = 0xFFFF  # return index of objects made by put()


def random_hex(nbytes: int = 8) -> str:
    return os.urandom(nbytes).hex()


def new_task_id() -> TaskID:
    return TaskID(random_hex(8))


def new_actor_id() -> ActorID:
    return ActorID(random_hex(8))


def new_node_id() -> NodeID:
    return NodeID(random_hex(8))


def new_placement_group_id() -> str:
    return random_hex(9)


def new_worker_id() -> WorkerID:
    return WorkerID(random_hex(6))


def new_job_id() -> JobID:
    return JobID(random_hex(4))


def object_id_for(task_id: TaskID, index: int) -> ObjectID:
    """The id of return value ``index`` of ``task_id``."""
    return ObjectID(f"{task_id}{index:04x}")


def new_put_object_id() -> ObjectID:
    return object_id_for(new_task_id(), PUT_INDEX)


def task_id_of(object_id: ObjectID) -> TaskID:
    """The task that made ``object_id`` (for put objects, a task that never ran)."""
    return TaskID(object_id[:-4])


def is_put_object(object_id: ObjectID) -> bool:
    return int(object_id[-4:], 16) == PUT_INDEX
