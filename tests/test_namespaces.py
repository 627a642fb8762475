"""Namespaces, as in Ray: a job's namespace is set by ``init(namespace=...)`` (else the job
gets an anonymous one of its own); a named actor is unique within its namespace and found
only there, unless ``get_actor`` names another namespace. Drivers are separate processes
joining one cluster started with ``babyray start --head``; the name registry of the GCS is
also tested on its own.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from cli_cluster import run_driver, running_head

import babyray as ray
from babyray.gcs.actor_directory import ActorDirectory
from babyray.gcs.tables import Table
from babyray.protocol import actors as am
from babyray.protocol import values as vm

# ---- the GCS's name registry -------------------------------------------------------------------


def _register(actors: ActorDirectory, actor_id: str, name: str, namespace: str) -> str | None:
    spec = vm.TaskSpec(
        f"create-{actor_id}",
        "job",
        "fn",
        "Holder",
        [],
        {},
        0,
        [],
        {},
        "owner",
        "owner-id",
        actor_id=actor_id,
        actor_creation=True,
        namespace=namespace,
    )
    info = am.ActorInfo(actor_id, "Holder", {}, name=name)
    return actors.register(actor_id, am.RegisterActor("req", spec, info, namespace=namespace))


def test_a_name_is_unique_within_its_namespace_and_found_only_there() -> None:
    actors = ActorDirectory(Table("actors"))
    assert _register(actors, "a1", "orange", "colors") is None
    assert _register(actors, "a2", "orange", "fruits") is None
    error = _register(actors, "a3", "orange", "colors")
    assert error is not None and "orange" in error and "namespace=colors" in error
    found = [actors.named("orange", ns) for ns in ("colors", "fruits", "other")]
    assert [info.actor_id if info else None for info in found] == ["a1", "a2", None]


def test_names_lists_one_namespace_or_all_and_a_dead_actor_frees_its_name_in_its_namespace_only() -> None:
    actors = ActorDirectory(Table("actors"))
    for actor_id, name, namespace in (
        ("a1", "orange", "colors"),
        ("a2", "purple", "colors"),
        ("a3", "orange", "fruits"),
    ):
        assert _register(actors, actor_id, name, namespace) is None
    assert actors.names("colors") == (("colors", "orange"), ("colors", "purple"))
    assert actors.names(None) == (("colors", "orange"), ("colors", "purple"), ("fruits", "orange"))
    actors.init_failed(am.ActorInitFailed("a1", "ValueError"))
    assert actors.names(None) == (("colors", "purple"), ("fruits", "orange"))
    assert actors.named("orange", "colors") is None and actors.named("orange", "fruits") is not None
    assert _register(actors, "a4", "orange", "colors") is None


def test_a_name_is_free_once_its_actor_is_killed_for_good_before_its_process_ends() -> None:
    actors = ActorDirectory(Table("actors"))
    assert _register(actors, "a1", "orange", "colors") is None
    actors.started(am.ActorStarted("a1", "addr", "n1", "w1", 11), scheduler="sched-n1")
    actors.kill(am.KillActor("a1", no_restart=False))  # to be restarted: keeps its name
    assert actors.named("orange", "colors") is not None
    assert actors.kill(am.KillActor("a1")) == [("sched-n1", am.KillActorWorker("a1"))]
    assert actors.named("orange", "colors") is None and actors.names(None) == ()
    assert _register(actors, "a2", "orange", "colors") is None


# ---- bad namespace values ----------------------------------------------------------------------


def test_a_namespace_that_is_not_a_non_empty_str_is_refused_before_anything_starts() -> None:
    with pytest.raises(TypeError, match="namespace must be None or a string"):
        ray.init(namespace=3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match='"" is not a valid namespace'):
        ray.init(namespace="")
    with pytest.raises(ValueError, match='"" is not a valid namespace'):
        ray.get_actor("orange", namespace="")
    with pytest.raises(ValueError, match="non-empty"):
        ray.get_actor("")

    @ray.remote
    class Holder:
        pass

    with pytest.raises(TypeError, match="namespace must be None or a string"):
        Holder.options(name="orange", namespace=["colors"])
    assert not ray.is_initialized()


# ---- drivers on one cluster --------------------------------------------------------------------

DRIVER = """
import json, sys, babyray as ray
namespace = None if sys.argv[2] == "-" else sys.argv[2]
ray.init(address=sys.argv[1], namespace=namespace)

@ray.remote(num_cpus=0)
class Holder:
    def __init__(self, value):
        self.value = value
    def get(self):
        return self.value

result = {"namespace": ray.get_runtime_context().namespace}
def create(name, value, **options):
    holder = Holder.options(name=name, lifetime="detached", **options).remote(value)
    return ray.get(holder.get.remote(), timeout=60)
def lookup(name, **where):
    try:
        return ray.get(ray.get_actor(name, **where).get.remote(), timeout=60)
    except ValueError:
        return None
"""


@pytest.fixture(scope="module")
def head(tmp_path_factory):
    """A one-node cluster started with ``babyray start --head``: (address, env of its drivers)."""
    with running_head(tmp_path_factory.mktemp("namespaces")) as started:
        yield started


def _driver(head: tuple[str, dict], namespace: str | None, body: str) -> dict:
    """Run a driver in ``namespace`` (None: an anonymous one) doing ``body``; its ``result`` dict."""
    address, env = head
    script = Path(env["BABYRAY_TEMP_DIR"]) / f"driver_{uuid.uuid4().hex[:8]}.py"
    script.write_text(DRIVER + body + '\nprint("RESULT", json.dumps(result), flush=True)\nray.shutdown()\n')
    run = run_driver(script, address, namespace or "-", env=env, timeout=180, expect="RESULT")
    return json.loads(run.stdout.split("RESULT", 1)[1].splitlines()[0])


def test_one_name_in_two_namespaces_is_two_actors_and_a_later_driver_finds_its_namespace_s(head):
    first = _driver(
        head,
        "colors",
        """
result["created"] = [create("orange", "colors-orange"), create("purple", "colors-purple")]
""",
    )
    assert first == {"namespace": "colors", "created": ["colors-orange", "colors-purple"]}

    second = _driver(
        head,
        "fruits",
        """
result["orange before"] = lookup("orange")
result["created"] = [create("orange", "fruits-orange"), create("watermelon", "fruits-watermelon")]
result["orange"] = lookup("orange")
result["colors' orange"] = lookup("orange", namespace="colors")
result["names"] = sorted(ray.util.list_named_actors())
result["all"] = ray.util.list_named_actors(all_namespaces=True)
""",
    )
    assert second["orange before"] is None
    assert second["created"] == ["fruits-orange", "fruits-watermelon"]
    assert second["orange"] == "fruits-orange" and second["colors' orange"] == "colors-orange"
    assert second["names"] == ["orange", "watermelon"]
    mine = [entry for entry in second["all"] if entry["namespace"] in ("colors", "fruits")]
    assert sorted(mine, key=lambda e: (e["namespace"], e["name"])) == [
        {"name": "orange", "namespace": "colors"},
        {"name": "purple", "namespace": "colors"},
        {"name": "orange", "namespace": "fruits"},
        {"name": "watermelon", "namespace": "fruits"},
    ]

    third = _driver(
        head,
        "colors",
        """
result["orange"] = lookup("orange")
result["watermelon"] = lookup("watermelon")
result["fruits' watermelon"] = lookup("watermelon", namespace="fruits")
""",
    )
    assert third == {
        "namespace": "colors",
        "orange": "colors-orange",
        "watermelon": None,
        "fruits' watermelon": "fruits-watermelon",
    }


def test_drivers_without_a_namespace_each_get_an_anonymous_one(head):
    first = _driver(
        head,
        None,
        """
result["created"] = create("mine", "first")
""",
    )
    second = _driver(
        head,
        None,
        """
result["mine before"] = lookup("mine")
result["created"] = create("mine", "second")
result["all"] = ray.util.list_named_actors(all_namespaces=True)
""",
    )
    assert str(uuid.UUID(first["namespace"])) == first["namespace"]  # a random UUID, as in Ray
    assert second["namespace"] != first["namespace"]
    assert second["mine before"] is None and second["created"] == "second"
    mine = [entry["namespace"] for entry in second["all"] if entry["name"] == "mine"]
    assert sorted(mine) == sorted([first["namespace"], second["namespace"]])


def test_options_namespace_registers_the_name_in_another_namespace(head):
    result = _driver(
        head,
        "home",
        """
result["created"] = create("elsewhere", "away", namespace="away")
result["in home"] = lookup("elsewhere")
result["in away"] = lookup("elsewhere", namespace="away")
result["home names"] = ray.util.list_named_actors()
existing = Holder.options(name="elsewhere", namespace="away", get_if_exists=True).remote("new")
result["get_if_exists"] = ray.get(existing.get.remote(), timeout=60)
""",
    )
    assert result == {
        "namespace": "home",
        "created": "away",
        "in home": None,
        "in away": "away",
        "home names": [],
        "get_if_exists": "away",
    }


def test_tasks_and_actors_run_in_their_job_s_namespace(head):
    result = _driver(
        head,
        "inside",
        """
@ray.remote
def namespace_of_task():
    return ray.get_runtime_context().namespace

@ray.remote
def nested():
    return ray.get(namespace_of_task.remote())

@ray.remote
def lookup_in_task(name):
    return ray.get(ray.get_actor(name).get.remote())

@ray.remote
def create_in_task(name):
    holder = Holder.options(name=name, lifetime="detached").remote("from a task")
    return ray.get(holder.get.remote())

@ray.remote
def from_a_thread(name):
    import threading
    seen = {}
    def run():
        seen["namespace"] = ray.get_runtime_context().namespace
        seen["nested task"] = ray.get(namespace_of_task.remote())
        seen["created"] = ray.get(Holder.options(name=name, lifetime="detached").remote("from a thread").get.remote())
    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    return seen

@ray.remote(num_cpus=0)
class Probe:
    def __init__(self):
        self.at_init = ray.get_runtime_context().namespace
    def namespaces(self):
        return self.at_init, ray.get_runtime_context().namespace, ray.util.list_named_actors()

create("driver's", "from the driver")
result["task"] = ray.get(namespace_of_task.remote(), timeout=60)
result["nested task"] = ray.get(nested.remote(), timeout=60)
result["lookup in task"] = ray.get(lookup_in_task.remote("driver's"), timeout=60)
result["created in task"] = ray.get(create_in_task.remote("task's"), timeout=60)
result["found from driver"] = lookup("task's")
result["thread in task"] = ray.get(from_a_thread.remote("thread's"), timeout=60)
result["found from thread"] = lookup("thread's")
result["actor"] = ray.get(Probe.remote().namespaces.remote(), timeout=60)
result["context"] = ray.get_runtime_context().get()["namespace"]
""",
    )
    assert result["namespace"] == result["context"] == "inside"
    assert result["task"] == result["nested task"] == "inside"
    assert result["lookup in task"] == "from the driver"
    assert result["created in task"] == result["found from driver"] == "from a task"
    assert result["thread in task"] == {
        "namespace": "inside",
        "nested task": "inside",
        "created": "from a thread",
    }
    assert result["found from thread"] == "from a thread"
    assert result["actor"] == ["inside", "inside", ["driver's", "task's", "thread's"]]
