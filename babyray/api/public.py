"""Ray's core module-level API: init, shutdown, get, put, wait, cancel and cluster info."""

from __future__ import annotations

import logging
import os
import threading
import uuid
from typing import Any, Sequence

from babyray import log
from babyray.api import context, generator
from babyray.api.object_ref import ObjectRef
from babyray.api.options import check_namespace
from babyray.api.ray_context import RayContext
from babyray.api.runtime import DriverRuntime, resolve_address
from babyray.api.task_interrupts import shielded
from babyray.runtime_env import packaging, validation

_INIT_SETTINGS = {
    "temp_dir",
    "auth_mode",
    "inline_threshold",
    "heartbeat_period",
    "node_timeout",
    "worker_pipeline_depth",
    "max_workers",
    "idle_worker_timeout",
    "lease_idle_timeout",
    "gcs_url",
    "gcs_table_prefix",
    "gcs_flushing",
    "gcs_flush_period",
    "gcs_flush_max_entries",
    "metrics_export_port",
}


def init(
    address: str | None = None,
    *,
    num_cpus: int | None = None,
    num_gpus: int | None = None,
    resources: dict | None = None,
    object_store_memory: int | None = None,
    ignore_reinit_error: bool = False,
    runtime_env: dict | None = None,
    namespace: str | None = None,
    **settings: Any,
) -> RayContext:
    """Start a private single-node cluster (``address=None``) and connect this driver to it.

    Returns the driver's ``RayContext`` (``ctx.address_info["session_dir"]``, ...), as Ray
    does; ``with babyray.init(): ...`` shuts down at the end of the block.

    ``runtime_env`` is the job's environment: every task and actor of the job runs in it
    (merged with their own, see babyray.runtime_env.validation.merge); its local
    ``working_dir`` and ``py_modules`` are packed and uploaded to the cluster here.

    ``namespace`` is the job's namespace: its named actors are registered and looked up
    there. Without one the job gets an anonymous namespace of its own (a random UUID, as in
    Ray), so its named actors are invisible to other drivers.

    Ray's arguments for parts babyray has no counterpart of (``include_dashboard``,
    ``dashboard_host``, ``dashboard_port``, ``local_mode``) are taken, with a line on stderr
    where they ask for what babyray does not do; ``logging_level`` sets the level of that
    stderr logger, ``_temp_dir`` is ``temp_dir``, ``_metrics_export_port`` is
    ``metrics_export_port`` (the head serves ``ray.util.metrics`` values there, a private
    cluster only); with ``log_to_driver=False`` what a private cluster's tasks and actors print
    goes to the session's ``logs/node.out``.

    Raises:
        RuntimeError: if babyray is already initialized (unless ``ignore_reinit_error``).
        ValueError: for an unknown setting, bad resources, a bad ``runtime_env`` or an empty ``namespace``.
        TypeError: a ``runtime_env`` field of the wrong type, a ``namespace`` that is not a str.
    """
    current = context.runtime_or_none()
    if current is not None:
        if ignore_reinit_error:
            return _info(current)
        raise RuntimeError(
            "Maybe you called babyray.init twice by accident? It is already initialized; "
            "pass ignore_reinit_error=True or call babyray.shutdown() first."
        )
    log_to_driver = _take_ray_only_arguments(settings)
    unknown = set(settings) - _INIT_SETTINGS
    if unknown:
        raise ValueError(f"Unknown init() argument(s): {', '.join(sorted(unknown))}")
    job_namespace = check_namespace(namespace) if namespace is not None else str(uuid.uuid4())
    job_env, packages = packaging.pack(validation.validate(runtime_env, job_level=True))
    address = resolve_address(address)
    if address is not None:
        given = {
            k: v
            for k, v in (
                ("num_cpus", num_cpus),
                ("num_gpus", num_gpus),
                ("resources", resources),
                ("object_store_memory", object_store_memory),
                ("_metrics_export_port", settings.get("metrics_export_port")),
            )
            if v is not None
        }
        if given:
            raise ValueError(
                f"When connecting to an existing cluster, {', '.join(given)} must not be "
                "provided: give them to `babyray start` instead."
            )
        runtime = DriverRuntime.connect(address, settings)
    else:
        runtime = DriverRuntime.start_local(
            num_cpus, num_gpus, resources, object_store_memory, settings, log_to_driver
        )
    for uri, blob in packages.items():  # stored once in the GCS; nodes fetch them by URI
        packaging.upload(runtime.core, uri, blob)
    runtime.runtime_env = job_env
    runtime.namespace = job_namespace
    context.set_driver_runtime(runtime)
    return _info(runtime)


def _take_ray_only_arguments(settings: dict) -> bool:
    """Take Ray's ``init()`` arguments that are not babyray settings out of ``settings``, so a
    Ray program passing them runs; where a value asks for something babyray does not do, say
    so in one line on stderr. ``logging_level`` sets the level of babyray's stdlib logger (its
    lines on stderr), ``_temp_dir`` is ``temp_dir`` and ``_metrics_export_port`` is
    ``metrics_export_port``. Returns ``log_to_driver``: whether what
    a private cluster's tasks and actors print comes to this driver (a joined cluster's goes
    to its nodes' logs either way)."""
    level = settings.pop("logging_level", None)
    if level is not None:  # first: it applies to the lines below too
        logging.getLogger("babyray").setLevel(level)
    dashboard = settings.pop("include_dashboard", None)
    dashboard_at = [settings.pop(key, None) for key in ("dashboard_host", "dashboard_port")]
    if dashboard or any(value is not None for value in dashboard_at):
        log.tell_user(
            "babyray has no dashboard: include_dashboard, dashboard_host and dashboard_port do nothing"
        )
    if settings.pop("local_mode", False):
        log.tell_user("babyray has no local mode: tasks and actors run in worker processes as usual")
    if "_temp_dir" in settings:
        settings.setdefault("temp_dir", settings.pop("_temp_dir"))
    if "_metrics_export_port" in settings:
        settings.setdefault("metrics_export_port", settings.pop("_metrics_export_port"))
    return bool(settings.pop("log_to_driver", True))


_auto_init_lock = threading.Lock()


def auto_init() -> None:
    """Ray's auto-init: ``init()`` with no arguments, made by the first call that needs a
    cluster (``get``, ``put``, ``wait``, ``cancel``, ``f.remote()``, ``Actor.remote()``,
    ``get_actor``, ``kill``, ``get_runtime_context``). It starts a private cluster, or joins
    BABYRAY_ADDRESS / RAY_ADDRESS when set, and says so on stderr; ``shutdown()`` or exit
    stops it. ``BABYRAY_ENABLE_AUTO_CONNECT=0`` (or Ray's ``RAY_ENABLE_AUTO_CONNECT=0``) turns
    it off.

    Raises:
        RuntimeError: auto-init is turned off.
    """
    switch = os.environ.get("BABYRAY_ENABLE_AUTO_CONNECT", os.environ.get("RAY_ENABLE_AUTO_CONNECT", ""))
    if switch == "0":
        raise RuntimeError(
            "babyray is not initialized: call babyray.init() first (starting a cluster on first "
            "use is turned off by BABYRAY_ENABLE_AUTO_CONNECT/RAY_ENABLE_AUTO_CONNECT=0)"
        )
    with _auto_init_lock:
        if context.runtime_or_none() is not None:
            return
        info = init().address_info
        runtime = context.runtime()
        joined = not runtime.owns_cluster
        runtime.log.info("driver_auto_init", joined=joined, address=info["address"])
        what = (
            f"Connected to the babyray cluster at {info['address']}"
            if joined
            else f"Started a local babyray cluster at {info['address']}"
        )
        log.tell_user(
            f"{what} (no init() was called; session {info['session_dir']}). "
            "babyray.shutdown() or the end of the program stops it."
        )


def _info(runtime: DriverRuntime) -> RayContext:
    address = runtime.gcs_address
    return RayContext(
        {
            "address": address,
            "gcs_address": address,
            "node_ip_address": runtime.node_ip,
            "node_id": runtime.node_id,
            "job_id": runtime.job_id,
            "session_dir": runtime.session_dir,
            "webui_url": None,
        }
    )


def shutdown() -> None:
    """Disconnect; a private cluster is stopped and leaves no process, port or segment behind."""
    runtime = context.runtime_or_none()
    if runtime is None or not runtime.is_driver:
        return
    context.set_driver_runtime(None)
    runtime.shutdown()


def is_initialized() -> bool:
    return context.runtime_or_none() is not None


def _refs_arg(object_refs: Any, what: str) -> tuple[list[ObjectRef], bool]:
    if isinstance(object_refs, ObjectRef):
        return [object_refs], True
    if isinstance(object_refs, (list, tuple)) and all(isinstance(r, ObjectRef) for r in object_refs):
        return list(object_refs), False
    bad = (
        object_refs
        if not isinstance(object_refs, (list, tuple))
        else next(r for r in object_refs if not isinstance(r, ObjectRef))
    )
    if isinstance(bad, generator.ObjectRefGenerator):
        raise TypeError(
            f"'{what}' does not take an ObjectRefGenerator ({bad!r}): iterate it for the refs of its "
            f"values, or {what} gen.completed() to wait for its task to end"
        )
    raise ValueError(
        f"'{what}' expects an ObjectRef or a list of ObjectRefs, got {type(bad).__name__}: {bad!r:.80}"
    )


@shielded
def get(object_refs: ObjectRef | Sequence[ObjectRef], *, timeout: float | None = None) -> Any:
    """The value(s) of ``object_refs``; raises the task's error, or GetTimeoutError."""
    refs, single = _refs_arg(object_refs, "get")
    values = context.runtime_or_auto_init().core.get(refs, timeout)
    return values[0] if single else values


@shielded
def put(value: Any) -> ObjectRef:
    """Store ``value`` in the object store; returns its ref. A ref itself cannot be put."""
    return context.runtime_or_auto_init().core.put(value)


@shielded
def wait(
    object_refs: Sequence[ObjectRef | generator.ObjectRefGenerator],
    *,
    num_returns: int = 1,
    timeout: float | None = None,
    fetch_local: bool = True,
) -> tuple[list, list]:
    """Wait for ``num_returns`` refs to be ready; returns (ready, not_ready) in input order.

    An ObjectRefGenerator in the list is ready when ``next`` on it would not block. As in Ray:
    an empty list returns ``([], [])`` at once.

    Raises:
        TypeError: not a list of ObjectRefs and ObjectRefGenerators.
        ValueError: a negative ``timeout``, a ref twice, or ``num_returns`` not from 1 to the
            number of refs.
    """
    if isinstance(object_refs, (ObjectRef, generator.ObjectRefGenerator)):
        raise TypeError(f"wait() expected a list of ObjectRef, got a single {type(object_refs).__name__}")
    if not isinstance(object_refs, (list, tuple)):
        raise TypeError(f"wait() expected a list of ObjectRef, got {type(object_refs).__name__}")
    waitables = list(object_refs)
    for waitable in waitables:
        if not isinstance(waitable, (ObjectRef, generator.ObjectRefGenerator)):
            raise TypeError(
                f"wait() expected a list of ObjectRef or ObjectRefGenerator, got a list containing "
                f"{type(waitable).__name__}: {waitable!r:.80}"
            )
    if timeout is not None and timeout < 0:
        raise ValueError(f"wait()'s timeout must be nonnegative, got {timeout}")
    if not waitables:
        return [], []
    generators = [w for w in waitables if isinstance(w, generator.ObjectRefGenerator)]
    refs = [w for w in waitables if isinstance(w, ObjectRef)]
    if len({r.id for r in refs}) != len(refs) or len({id(g) for g in generators}) != len(generators):
        raise ValueError("wait() requires a list of unique object refs")
    if not 1 <= num_returns <= len(waitables):
        raise ValueError(
            f"num_returns must be from 1 to {len(waitables)} (the refs given), got {num_returns}"
        )
    if generators:
        return generator.wait(context.runtime().core, waitables, num_returns, timeout)
    return context.runtime_or_auto_init().core.wait(refs, num_returns, timeout)


@shielded
def cancel(
    object_ref: ObjectRef | generator.ObjectRefGenerator, *, force: bool = False, recursive: bool = True
) -> None:
    """Cancel the task that makes ``object_ref`` (or a generator's task, which stops yielding);
    ``get`` then raises TaskCancelledError. ``recursive``: the tasks and actor calls it
    submitted that are in flight are cancelled too (``force`` is ignored for actor calls).

    Raises:
        ValueError: ``force=True`` for an actor call not finished yet (as in Ray: use
            ``kill(actor)`` to end an actor).
    """
    if isinstance(object_ref, generator.ObjectRefGenerator):
        object_ref = object_ref.completed()
    if not isinstance(object_ref, ObjectRef):
        raise TypeError(f"cancel() expects an ObjectRef, got {type(object_ref).__name__}")
    context.runtime_or_auto_init().core.cancel(object_ref, force, recursive)


def nodes() -> list[dict]:
    """The node table, with Ray's keys."""
    runtime = context.runtime()
    infos = runtime.core.request(runtime.gcs, _get_nodes).nodes
    return [
        {
            "NodeID": n.node_id,
            "Alive": n.alive,
            "NodeManagerAddress": n.address.split(":")[0],
            "NodeManagerPort": int(n.address.split(":")[1]) if ":" in n.address else 0,
            "Resources": dict(n.resources) if n.alive else {},
            "alive": n.alive,
        }
        for n in infos
    ]


def _get_nodes(req_id: str) -> Any:
    from babyray.protocol import cluster as cm

    return cm.GetNodes(req_id)


def cluster_resources() -> dict:
    """Total resources of the alive nodes."""
    return _sum(n["Resources"] for n in nodes() if n["Alive"])


def available_resources() -> dict:
    """Free resources of the alive nodes (as of their last heartbeats)."""
    runtime = context.runtime()
    infos = runtime.core.request(runtime.gcs, _get_nodes).nodes
    return {k: v for k, v in _sum(n.available for n in infos if n.alive).items() if v > 0}


def _sum(dicts: Any) -> dict:
    total: dict = {}
    for d in dicts:
        for k, v in d.items():
            total[k] = total.get(k, 0.0) + v
    return total
