"""``runtime_env``: env_vars, working_dir and py_modules, checked against Ray's documentation
("Environment Dependencies" and the ``ray.runtime_env.RuntimeEnv`` API reference).

Each test names the documented behaviour it checks. Clusters are private (2 CPUs) and are
checked for leaks like every other test's.
"""

from __future__ import annotations

import json
import os
import sys
import textwrap
import time

import pytest
from conftest import assert_session_clean

import babyray as ray
from babyray.exceptions import ActorDiedError, RuntimeEnvSetupError
from babyray.runtime_env import RuntimeEnv

TIMEOUT = 90


@pytest.fixture
def start(tmp_path):
    """``start(runtime_env=..., **init_kwargs)`` inits a private cluster, shut down after the test."""
    sessions = []

    def init(**kwargs):
        kwargs.setdefault("num_cpus", 2)
        info = ray.init(
            temp_dir=str(tmp_path / "sessions"), object_store_memory=128 * 1024 * 1024, **kwargs
        ).address_info
        sessions.append(info["session_dir"])
        return info

    try:
        yield init
    finally:
        ray.shutdown()
        for session_dir in sessions:
            assert_session_clean(session_dir)


@pytest.fixture
def driver_modules():
    """Forget the test's own modules (imported in the driver) after the test."""
    before = set(sys.modules)
    path = list(sys.path)
    yield
    for name in set(sys.modules) - before:
        if name.startswith("rtenv_"):
            del sys.modules[name]
    sys.path[:] = path


def write(root, files: dict) -> str:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return str(root)


@ray.remote
def environ(*names):
    return {n: os.environ.get(n) for n in names}


@ray.remote
def worker_and_value(name):
    return ray.get_runtime_context().get_worker_id(), os.getpid(), os.environ.get(name)


@ray.remote
class EnvReader:
    def read(self, *names):
        return {n: os.environ.get(n) for n in names}

    def nested(self, *names):
        return ray.get(environ.remote(*names), timeout=TIMEOUT)


# ---- env_vars --------------------------------------------------------------------------


def test_job_env_vars_reach_tasks_and_actors_but_not_the_driver(start):
    """Docs: ``ray.init(runtime_env={"env_vars": ...})`` sets the variables for every worker
    (task and actor) of the job; the driver process itself is not changed."""
    start(runtime_env={"env_vars": {"RTENV_A": "a", "RTENV_B": "b"}})
    assert ray.get(environ.remote("RTENV_A", "RTENV_B"), timeout=TIMEOUT) == {"RTENV_A": "a", "RTENV_B": "b"}
    actor = EnvReader.remote()
    assert ray.get(actor.read.remote("RTENV_A"), timeout=TIMEOUT) == {"RTENV_A": "a"}
    assert "RTENV_A" not in os.environ


def test_task_and_actor_env_vars_merge_with_the_jobs(start):
    """Docs (Inheritance): a task's or actor's ``runtime_env["env_vars"]`` is merged with its
    parent's (the job's), the child's value winning for a name in both; this holds for
    ``.options(runtime_env=)`` and ``@ray.remote(runtime_env=)`` alike."""
    start(runtime_env={"env_vars": {"RTENV_A": "job-a", "RTENV_B": "job-b"}})
    names = ("RTENV_A", "RTENV_B", "RTENV_C")
    child = {"env_vars": {"RTENV_B": "task-b", "RTENV_C": "task-c"}}
    expected = {"RTENV_A": "job-a", "RTENV_B": "task-b", "RTENV_C": "task-c"}
    assert ray.get(environ.options(runtime_env=child).remote(*names), timeout=TIMEOUT) == expected

    @ray.remote(runtime_env=RuntimeEnv(env_vars={"RTENV_C": "decorated"}))
    def decorated(*names):
        return {n: os.environ.get(n) for n in names}

    assert ray.get(decorated.remote(*names), timeout=TIMEOUT) == {
        "RTENV_A": "job-a",
        "RTENV_B": "job-b",
        "RTENV_C": "decorated",
    }
    actor = EnvReader.options(runtime_env=child).remote()
    assert ray.get(actor.read.remote(*names), timeout=TIMEOUT) == expected
    # The job's own tasks still see the job's values only.
    assert ray.get(environ.remote(*names), timeout=TIMEOUT) == {
        "RTENV_A": "job-a",
        "RTENV_B": "job-b",
        "RTENV_C": None,
    }


def test_nested_tasks_inherit_their_parents_environment(start):
    """Docs (Inheritance): the runtime env applies to all child tasks and actors of a task
    or actor once set, unless overridden; a child's env_vars merge with its parent's."""
    start()
    parent_env = {"env_vars": {"RTENV_P": "parent"}}

    @ray.remote
    def parent():
        inherited = ray.get(environ.remote("RTENV_P", "RTENV_Q"), timeout=TIMEOUT)
        merged = ray.get(
            environ.options(runtime_env={"env_vars": {"RTENV_Q": "child"}}).remote("RTENV_P", "RTENV_Q"),
            timeout=TIMEOUT,
        )
        return inherited, merged

    inherited, merged = ray.get(parent.options(runtime_env=parent_env).remote(), timeout=TIMEOUT)
    assert inherited == {"RTENV_P": "parent", "RTENV_Q": None}
    assert merged == {"RTENV_P": "parent", "RTENV_Q": "child"}
    actor = EnvReader.options(runtime_env=parent_env).remote()
    assert ray.get(actor.nested.remote("RTENV_P"), timeout=TIMEOUT) == {"RTENV_P": "parent"}
    # The driver's own tasks are unaffected (the job has no runtime_env).
    assert ray.get(environ.remote("RTENV_P"), timeout=TIMEOUT) == {"RTENV_P": None}


def test_env_var_references_expand_to_the_existing_value(start):
    """Docs (env_vars): ``${ENV_VAR}`` refers to the variable's existing value on the cluster
    (to append to it); a variable that does not exist becomes the empty string."""
    start()
    env = {"env_vars": {"PATH": "${PATH}:/rtenv/extra", "RTENV_MISSING": "[${RTENV_NOT_SET_ANYWHERE}]"}}
    got = ray.get(environ.options(runtime_env=env).remote("PATH", "RTENV_MISSING"), timeout=TIMEOUT)
    assert got["PATH"].endswith(":/rtenv/extra") and len(got["PATH"]) > len(":/rtenv/extra")
    assert "${" not in got["PATH"]
    assert got["RTENV_MISSING"] == "[]"


def test_workers_of_different_environments_are_separate_pools(start):
    """Docs: workers are started for a runtime environment and run only tasks of that
    environment (several environments can run side by side on one cluster): a worker never
    runs tasks of two environments, so every task sees exactly its own variables."""
    start()
    envs = [None, {"env_vars": {"RTENV_POOL": "x"}}, {"env_vars": {"RTENV_POOL": "y"}}]
    refs = [
        (i % 3, worker_and_value.options(runtime_env=envs[i % 3]).remote("RTENV_POOL")) for i in range(30)
    ]
    workers: dict[int, set] = {0: set(), 1: set(), 2: set()}
    for which, ref in refs:
        worker_id, _, value = ray.get(ref, timeout=TIMEOUT)
        assert value == [None, "x", "y"][which]
        workers[which].add(worker_id)
    assert all(workers.values())
    assert not workers[0] & workers[1] and not workers[0] & workers[2] and not workers[1] & workers[2]


def test_a_full_worker_pool_makes_room_for_another_environment(start):
    """Docs: a task of another runtime environment gets a worker of its own even when the
    node's worker limit is reached (an idle worker of another environment gives way)."""
    start(num_cpus=1, max_workers=2)
    for round_ in range(2):
        for value in ("p", "q", "r", None):
            env = {"env_vars": {"RTENV_FULL": value}} if value else None
            got = ray.get(environ.options(runtime_env=env).remote("RTENV_FULL"), timeout=TIMEOUT)
            assert got == {"RTENV_FULL": value}, (round_, value)


# ---- working_dir and py_modules --------------------------------------------------------


def test_working_dir_is_uploaded_importable_and_the_cwd(start, tmp_path, driver_modules):
    """Docs (working_dir): the local directory is uploaded to the cluster and the workers
    start in their node's copy of it: its files open by relative path, it is first on
    ``sys.path`` (its modules import in tasks and actors), and functions defined in those
    modules run remotely. The job's ``runtime_env`` shows it as its ``gcs://`` package."""
    project = write(
        tmp_path / "project",
        {
            "rtenv_wd_mod.py": """
            def compute(x):
                return x * 7
        """,
            "data/input.txt": "hello from the working_dir\n",
        },
    )
    start(runtime_env={"working_dir": project})
    job_env = ray.get_runtime_context().runtime_env
    assert job_env["working_dir"].startswith("gcs://_ray_pkg_") and job_env["working_dir"].endswith(".zip")

    @ray.remote
    def use_working_dir():
        import rtenv_wd_mod

        with open("data/input.txt") as f:
            text = f.read()
        return rtenv_wd_mod.compute(6), text, os.getcwd(), sys.path[0], rtenv_wd_mod.__file__

    value, text, cwd, first_path, module_file = ray.get(use_working_dir.remote(), timeout=TIMEOUT)
    assert value == 42 and text == "hello from the working_dir\n"
    assert cwd == first_path and module_file == os.path.join(cwd, "rtenv_wd_mod.py")
    assert cwd != project and os.path.basename(cwd) == job_env["working_dir"][len("gcs://") : -len(".zip")]

    sys.path.insert(0, project)  # the driver imports it too: cloudpickle sends compute by name
    import rtenv_wd_mod

    assert ray.get(ray.remote(rtenv_wd_mod.compute).remote(3), timeout=TIMEOUT) == 21

    @ray.remote
    class Reader:
        def read(self):
            with open("data/input.txt") as f:
                return f.read()

    assert ray.get(Reader.remote().read.remote(), timeout=TIMEOUT) == "hello from the working_dir\n"


def test_working_dir_is_unpacked_once_per_node_and_shared_by_environments(start, tmp_path):
    """Docs (working_dir, caching): the package is named by its content hash and unpacked
    once per node; workers of several environments with the same working_dir (here: job
    working_dir plus different env_vars) use the same copy."""
    project = write(tmp_path / "project", {"marker.txt": "m"})
    info = start(runtime_env={"working_dir": project})

    @ray.remote
    def where():
        return os.getcwd(), os.path.exists("marker.txt")

    refs = [where.options(runtime_env={"env_vars": {"RTENV_N": str(i % 3)}}).remote() for i in range(9)]
    results = ray.get(refs, timeout=TIMEOUT)
    assert len({cwd for cwd, _ in results}) == 1 and all(found for _, found in results)
    unpacked = os.listdir(os.path.join(info["session_dir"], "runtime_resources", "working_dir_files"))
    assert len(unpacked) == 1 and unpacked[0].startswith("_ray_pkg_"), unpacked


def test_a_large_working_dir_arrives_intact(start, tmp_path):
    """Docs (working_dir): the whole directory (up to 500 MiB) is uploaded and each node's
    copy holds the same files - here 10 MiB of random bytes, more than one chunk of the
    GCS's package storage, compared by hash."""
    import hashlib

    project = tmp_path / "project"
    project.mkdir()
    data = os.urandom(10 * 1024 * 1024 + 123)
    (project / "data.bin").write_bytes(data)
    start(runtime_env={"working_dir": str(project)})

    @ray.remote
    def digest():
        with open("data.bin", "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()

    assert ray.get(digest.remote(), timeout=TIMEOUT) == hashlib.sha256(data).hexdigest()


def test_excludes_and_gitignore_leave_files_out_of_the_working_dir(start, tmp_path):
    """Docs (excludes): gitignore-style patterns, relative to the working_dir when they hold
    a ``/``, name files and directories not uploaded; ``.gitignore`` files in the working_dir
    (and its subdirectories, relative to where they are) are respected too."""
    project = write(
        tmp_path / "project",
        {
            "keep.py": "",
            "run.log": "",
            "sub/run.log": "",
            "big/blob.bin": "",
            "sub/big/kept.txt": "",
            "secret.txt": "",
            ".gitignore": "secret.txt\n# a comment\n",
            "pkg/.gitignore": "/local.cfg\ncache/\n",
            "pkg/local.cfg": "",
            "pkg/deep/local.cfg": "",
            "pkg/cache/x.bin": "",
            "cache/kept.bin": "",
        },
    )
    start(runtime_env={"working_dir": project, "excludes": ["*.log", "/big/"]})

    @ray.remote
    def files():
        return sorted(os.path.relpath(os.path.join(d, f), ".") for d, _, fs in os.walk(".") for f in fs)

    assert ray.get(files.remote(), timeout=TIMEOUT) == [
        ".gitignore",
        "cache/kept.bin",
        "keep.py",
        "pkg/.gitignore",
        "pkg/deep/local.cfg",
        "sub/big/kept.txt",
    ]


def test_a_working_dir_over_the_size_limit_is_refused_before_starting(start, tmp_path):
    """Docs (working_dir): a local directory may hold at most 500 MiB; ``excludes`` leaves
    large files out. Too large a directory fails ``init()`` with a clear error and starts
    nothing."""
    project = tmp_path / "project"
    project.mkdir()
    with open(project / "huge.bin", "wb") as f:
        f.truncate(501 * 1024 * 1024)  # sparse: nothing is written
    with pytest.raises(ValueError, match=r"500 MiB.*excludes"):
        start(runtime_env={"working_dir": str(project)})
    assert not ray.is_initialized()
    start(runtime_env={"working_dir": str(project), "excludes": ["huge.bin"]})
    assert ray.get(environ.remote("HOME"), timeout=TIMEOUT)


def test_py_modules_directories_files_and_module_objects_are_importable(start, tmp_path, driver_modules):
    """Docs (py_modules): each entry - a local package directory, a local .py file or a
    Python module object - is uploaded and importable by its name in the job's workers,
    whose working directory is not changed by it."""
    write(
        tmp_path / "libs",
        {
            "rtenv_pkg/__init__.py": "NAME = 'pkg'\n",
            "rtenv_pkg/sub.py": "def f():\n    return 'sub'\n",
            "rtenv_single.py": "VALUE = 5\n",
            "rtenv_objmod/__init__.py": "from .inner import G\n",
            "rtenv_objmod/inner.py": "G = 'object'\n",
        },
    )
    libs = tmp_path / "libs"
    sys.path.insert(0, str(libs))
    import rtenv_objmod

    start(runtime_env={"py_modules": [str(libs / "rtenv_pkg"), str(libs / "rtenv_single.py"), rtenv_objmod]})

    @ray.remote
    def use():
        import rtenv_objmod
        import rtenv_pkg.sub
        import rtenv_single

        return rtenv_pkg.NAME, rtenv_pkg.sub.f(), rtenv_single.VALUE, rtenv_objmod.G, os.getcwd()

    *values, cwd = ray.get(use.remote(), timeout=TIMEOUT)
    assert values == ["pkg", "sub", 5, "object"]
    assert "runtime_resources" not in cwd


def test_without_a_runtime_env_a_driver_only_module_is_not_importable(start, tmp_path, driver_modules):
    """Docs: dependencies a Ray script needs must exist on each node (else
    ModuleNotFoundError) - which is what working_dir/py_modules solve."""
    write(tmp_path / "elsewhere", {"rtenv_absent.py": "X = 1\n"})
    start()

    @ray.remote
    def use():
        import rtenv_absent

        return rtenv_absent.X

    with pytest.raises(ModuleNotFoundError):
        ray.get(use.remote(), timeout=TIMEOUT)


# ---- errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "runtime_env, error, words",
    [
        ({"pip": ["requests"]}, ValueError, "'pip'"),
        ({"conda": "env"}, ValueError, "'conda'"),
        ({"container": {"image": "x"}}, ValueError, "'container'"),
        ({"not_a_field": 1}, ValueError, "'not_a_field'"),
        ({"working_dir": "/no/such/rtenv/dir"}, ValueError, "/no/such/rtenv/dir does not exist"),
        ({"working_dir": "s3://bucket/code.zip"}, ValueError, "remote URIs"),
        ({"py_modules": ["/no/such/rtenv/module"]}, ValueError, "does not exist"),
        ({"env_vars": {"RTENV_X": 1}}, TypeError, "Dict\\[str, str\\]"),
        ("working_dir=.", TypeError, "must be a dict"),
    ],
)
def test_init_refuses_bad_runtime_envs_naming_the_cause(start, runtime_env, error, words):
    """Docs: the runtime_env fields babyray has are env_vars, working_dir, py_modules and
    excludes (typed as in the RuntimeEnv reference); anything else fails ``init()`` clearly,
    before a cluster starts."""
    with pytest.raises(error, match=words):
        start(runtime_env=runtime_env)
    assert not ray.is_initialized()


def test_tasks_and_actors_refuse_bad_runtime_envs_and_the_cluster_keeps_running(start, tmp_path):
    """Docs: unsupported fields fail where given (``@ray.remote``, ``.options()``); a local
    working_dir or py_modules path can only be set per job, in ``ray.init()``."""
    start()
    with pytest.raises(ValueError, match="'pip'"):
        environ.options(runtime_env={"pip": ["numpy"]}).remote()
    with pytest.raises(ValueError, match="'conda'"):

        @ray.remote(runtime_env={"conda": "x"})
        def never():
            pass

    with pytest.raises(ValueError, match="'image_uri'"):
        EnvReader.options(runtime_env={"image_uri": "x"}).remote()
    with pytest.raises(ValueError, match="per job"):
        environ.options(runtime_env={"working_dir": str(tmp_path)}).remote()
    with pytest.raises(ValueError, match="per job"):
        EnvReader.options(runtime_env={"py_modules": [str(tmp_path)]}).remote()
    assert ray.get(environ.remote("HOME"), timeout=TIMEOUT)


def test_a_node_that_cannot_set_up_the_environment_fails_its_tasks_with_runtime_env_setup_error(
    start, tmp_path
):
    """Ray raises RuntimeEnvSetupError for a task whose runtime_env cannot be set up on the
    node (and an actor whose env fails is dead); the cluster keeps running, and once the
    node can set the environment up, the job's tasks run (a failed worker does not linger)."""
    project = write(tmp_path / "project", {"a.txt": "a"})
    info = start(runtime_env={"working_dir": project})
    blocker = os.path.join(info["session_dir"], "runtime_resources")
    with open(blocker, "w") as f:
        f.write("a file where the node unpacks packages")  # the node cannot unpack there

    @ray.remote
    def task():
        return 1

    with pytest.raises(RuntimeEnvSetupError, match="runtime_env"):
        ray.get(task.remote(), timeout=TIMEOUT)
    actor = EnvReader.remote()
    with pytest.raises(ActorDiedError, match="RuntimeEnvSetupError"):
        ray.get(actor.read.remote("HOME"), timeout=TIMEOUT)
    os.remove(blocker)
    deadline = time.monotonic() + TIMEOUT
    while True:
        try:
            assert ray.get(task.remote(), timeout=TIMEOUT) == 1
            break
        except RuntimeEnvSetupError:
            assert time.monotonic() < deadline, "the environment was never set up again"
            time.sleep(0.5)


# ---- runtime context -------------------------------------------------------------------


def test_runtime_context_shows_the_current_environment(start, tmp_path):
    """Docs: ``ray.get_runtime_context().runtime_env`` is the runtime env of the current job
    (in the driver) or of the current task or actor (in a worker), a RuntimeEnv (a dict)."""
    project = write(tmp_path / "project", {"x.txt": "x"})
    start(runtime_env={"working_dir": project, "env_vars": {"RTENV_J": "j"}})
    job_env = ray.get_runtime_context().runtime_env
    assert isinstance(job_env, RuntimeEnv) and isinstance(job_env, dict)
    assert job_env["env_vars"] == {"RTENV_J": "j"} and job_env["working_dir"].startswith("gcs://")
    assert job_env.env_vars() == {"RTENV_J": "j"} and job_env.working_dir() == job_env["working_dir"]
    assert (
        job_env.py_modules() == []
        and json.loads(ray.get_runtime_context().get_runtime_env_string()) == job_env
    )

    @ray.remote
    def current():
        return dict(ray.get_runtime_context().runtime_env)

    got = ray.get(current.options(runtime_env={"env_vars": {"RTENV_T": "t"}}).remote(), timeout=TIMEOUT)
    assert got == {"working_dir": job_env["working_dir"], "env_vars": {"RTENV_J": "j", "RTENV_T": "t"}}
