"""Remote classes (actors): ``@remote`` on a class, handles, method calls, ``@method``.

``Cls.remote(*args)`` registers the actor with the GCS (which places it through the global
scheduler on a node that has its resources) and returns an ActorHandle at once. Calls
``handle.method.remote(...)`` go straight to the actor's worker (see actor_calls.py).
Handles pickle, so they can be passed to tasks and other actors.
"""

from __future__ import annotations

import functools
import inspect
import os
from typing import Any, Callable, cast

from babyray import serialization
from babyray.actors.actor_host import CONCURRENCY_GROUP_ATTR, is_async_class, method_groups
from babyray.api import context
from babyray.api.core import CoreClient, function_id_of
from babyray.api.generator import generator_mode, submit_generator
from babyray.api.object_ref import ObjectRef
from babyray.api.options import ACTOR_OPTIONS, check_namespace, check_options, resource_request
from babyray.api.remote_function import encode_arg
from babyray.api.task_interrupts import shielded
from babyray.api.task_submission import new_returns
from babyray.ids import ActorID, FunctionID, new_actor_id
from babyray.protocol import actors as am
from babyray.protocol import values as vm
from babyray.runtime_env.validation import merge
from babyray.util.placement_group import in_placement_group

_NUM_RETURNS_ATTR = "__babyray_num_returns__"
_OPTIONS_ATTR = "__babyray_method_options__"  # the per-call options @method gave, as a dict
# The options a method (@method) or a call (.options()) may set over the actor's.
CALL_OPTIONS = ("max_task_retries", "retry_exceptions", "enable_task_events")


def method(
    function: Callable | None = None,
    *,
    num_returns: int | str | None = None,
    concurrency_group: str | None = None,
    max_task_retries: int | None = None,
    retry_exceptions: bool | list | tuple | None = None,
    enable_task_events: bool | None = None,
) -> Callable:
    """Decorator for actor methods: ``@ray.method(num_returns=2)`` (or "streaming", "dynamic"),
    ``@ray.method(concurrency_group="io")`` (a group the class declares), or bare ``@ray.method``.
    Without ``num_returns`` a generator method streams, as in Ray.

    ``max_task_retries`` (-1: no limit) replaces the actor's for this method's calls;
    ``retry_exceptions`` (True, or a list of exception classes) retries them on an application
    exception too, within the same ``max_task_retries``. ``enable_task_events=False`` keeps
    its calls out of the state API (replaces the actor's).

    Raises:
        TypeError, ValueError: a value ``.options()`` would refuse.
    """
    given = _call_options(
        num_returns=num_returns,
        max_task_retries=max_task_retries,
        retry_exceptions=retry_exceptions,
        enable_task_events=enable_task_events,
    )

    def decorate(function: Callable) -> Callable:
        if num_returns is not None:
            setattr(function, _NUM_RETURNS_ATTR, num_returns)
        if given:
            setattr(function, _OPTIONS_ATTR, given)
        if concurrency_group is not None:
            setattr(function, CONCURRENCY_GROUP_ATTR, concurrency_group)
        return function

    return decorate(function) if function is not None else decorate


def _call_options(**options: Any) -> dict[str, Any]:
    """The ``CALL_OPTIONS`` among ``options`` that are given (not None), checked as
    ``check_options`` checks them (``num_returns`` is checked too, not returned)."""
    given = {k: v for k, v in options.items() if v is not None}
    check_options(given, set(options), "an actor method")
    return {k: v for k, v in given.items() if k in CALL_OPTIONS}


def _concurrency_groups(cls: type, groups: Any) -> dict[str, int]:
    """The class's concurrency groups, checked against the groups its methods name."""
    if groups is None:
        groups = {}
    if not isinstance(groups, dict) or not all(
        isinstance(k, str) and isinstance(v, int) and v > 0 for k, v in groups.items()
    ):
        raise ValueError(f"concurrency_groups must map group names to positive ints, got {groups!r}")
    for name, group in method_groups(cls).items():
        if group not in groups:
            raise ValueError(
                f"Method '{cls.__name__}.{name}' is in concurrency group '{group}', which the "
                f"actor does not define; defined groups: {sorted(groups) or 'none'}"
            )
    return dict(groups)


def _methods_of(cls: type) -> dict[str, int | str]:
    """num_returns of each method: a generator method streams unless ``@method`` says otherwise."""

    def num_returns(member: Callable) -> int | str:
        chosen = getattr(member, _NUM_RETURNS_ATTR, None)
        return chosen if chosen is not None else generator_mode(member, None) or 1

    return {
        name: num_returns(member)
        for name, member in inspect.getmembers(cls, callable)
        if not (name.startswith("__") and name.endswith("__"))
    }


def _method_options(cls: type) -> dict[str, dict[str, Any]]:
    """The options ``@method`` gave the methods of ``cls`` (see ``ActorInfo.method_options``)."""
    found = {}
    for name, member in inspect.getmembers(cls, callable):
        given = dict(getattr(member, _OPTIONS_ATTR, {}))
        if isinstance(given.get("retry_exceptions"), (list, tuple)):
            given["retry_exceptions"] = serialization.dumps(tuple(given["retry_exceptions"]))
        if given:
            found[name] = given
    return found


class ActorClass:
    """A class made remote. Instantiating it directly raises TypeError, as in Ray."""

    def __init__(self, cls: type, options: dict) -> None:
        self._cls = cls
        self._options = check_options(dict(options), ACTOR_OPTIONS, "an actor class")
        self._groups = _concurrency_groups(cls, self._options.get("concurrency_groups"))
        init = vars(cls).get("__init__")
        self._signature = inspect.signature(init) if init is not None else None
        self._blob: bytes | None = None
        self._function_id: FunctionID | None = None
        self.__name__ = cls.__name__

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(
            f"Actors cannot be instantiated directly. Instead of '{self.__name__}()', "
            f"use '{self.__name__}.remote()'."
        )

    def __reduce__(self) -> Any:
        return (ActorClass, (self._cls, self._options))

    def options(self, **options: Any) -> "ActorClass":
        view = ActorClass(self._cls, {**self._options, **options})
        view._blob, view._function_id = self._blob, self._function_id
        return view

    @shielded
    def remote(self, *args: Any, **kwargs: Any) -> "ActorHandle":
        options = self._options
        if options.get("get_if_exists") and not options.get("name"):
            raise ValueError("The actor name must be specified to use get_if_exists.")
        _check_in_order_possible(self._cls, options)
        if self._signature is not None:
            try:
                self._signature.bind(None, *args, **kwargs)
            except TypeError as exc:
                raise TypeError(f"{self.__name__}.remote(): {exc}") from None
        runtime = context.runtime_or_auto_init()
        core = runtime.core
        name = options.get("name")
        namespace = options.get("namespace") or context.current_namespace()
        if name is not None and options.get("get_if_exists"):
            try:
                return get_actor(name, namespace=namespace)
            except ValueError:
                pass
        if self._blob is None:
            self._blob = serialization.dumps_function(self._cls)
            self._function_id = function_id_of(self._blob)
        assert self._function_id is not None, "set with the blob"
        resources, strategy = in_placement_group(
            options, resource_request(options, 0.0), f"actor {self.__name__}"
        )
        core.ensure_function(self._function_id, self.__name__, self._blob)
        actor_id = new_actor_id()
        task_id, _ = new_returns(0)
        resolved = _resolve_now(
            core, [encode_arg(core, a) for a in args], {k: encode_arg(core, v) for k, v in kwargs.items()}
        )
        info = am.ActorInfo(
            actor_id,
            self.__name__,
            _methods_of(self._cls),
            int(options.get("max_task_retries") or 0),
            name,
            tuple(self._groups),
            _method_options(self._cls),
            max_pending_calls=-1
            if options.get("max_pending_calls") is None
            else options["max_pending_calls"],
            allow_out_of_order_execution=_out_of_order(self._cls, options),
            enable_task_events=options.get("enable_task_events", True),
        )
        spec = vm.TaskSpec(
            task_id=task_id,
            job_id=runtime.job_id,
            function_id=self._function_id,
            function_name=f"{self.__name__}.__init__",
            args=resolved[0],
            kwargs=resolved[1],
            num_returns=0,
            return_ids=[],
            resources=resources,
            owner=core.inbox,
            owner_id=core.identity,
            max_retries=0,
            actor_id=actor_id,
            actor_creation=True,
            actor_options={
                "max_concurrency": options.get("max_concurrency"),
                "name": name,
                "concurrency_groups": self._groups,
            },
            scheduling_strategy=strategy,
            runtime_env=merge(runtime.runtime_env, options.get("runtime_env")),
            namespace=context.current_namespace(),
        )
        reply = core.request(
            core.gcs,
            lambda r: am.RegisterActor(
                r,
                spec,
                info,
                int(options.get("max_restarts") or 0),
                options.get("lifetime") == "detached",
                namespace,
                owner_node="" if runtime.is_driver else core.node_id,
                owner_pid=os.getpid(),
            ),
        )
        if reply.error:
            raise ValueError(reply.error)
        return ActorHandle(info)


def _out_of_order(cls: type, options: dict) -> bool:
    """Whether a call whose arguments are ready may pass earlier calls still waiting for theirs:
    as asked, else (as in Ray) for async and threaded actors, which never promise an order."""
    asked = options.get("allow_out_of_order_execution")
    if asked is not None:
        return bool(asked)
    return is_async_class(cls) or (options.get("max_concurrency") or 1) > 1


def _check_in_order_possible(cls: type, options: dict) -> None:
    """Refuse ``allow_out_of_order_execution=False`` where calls cannot run in order, as Ray does."""
    if options.get("allow_out_of_order_execution") is not False:
        return
    if is_async_class(cls):
        raise ValueError(
            "If you're using async actors, Ray can't execute actor tasks in order. "
            "Set `allow_out_of_order_execution=True` to allow out-of-order execution."
        )
    if (options.get("max_concurrency") or 1) > 1:
        raise ValueError(
            "If you're using multi-threaded actors, Ray can't execute actor tasks in order. "
            "Set `allow_out_of_order_execution=True` to allow out-of-order execution."
        )


def _resolve_now(core: CoreClient, args: list, kwargs: dict) -> tuple[list, dict]:
    """Wait for the constructor's ref arguments (the GCS keeps the spec for restarts)."""
    refs = [a for a in [*args, *kwargs.values()] if isinstance(a, ObjectRef)]
    found = core.objects.collect(refs, len(refs), None) if refs else {}

    def value(a: Any) -> Any:
        return vm.ValueArg(a.id, found[a.id]) if isinstance(a, ObjectRef) else a

    return [value(a) for a in args], {k: value(v) for k, v in kwargs.items()}


class ActorHandle:
    """A reference to a running actor; ``handle.method.remote(...)`` calls it."""

    def __init__(self, info: am.ActorInfo) -> None:
        self._info = info
        self._call_defaults: dict[str, dict[str, Any]] = {}  # see call_defaults

    def call_defaults(self, method: str) -> dict[str, Any]:
        """The ``CALL_OPTIONS`` of a call of ``method`` without ``.options()``: its ``@method``
        values where given, else the actor's (no retry on exceptions)."""
        found = self._call_defaults.get(method)
        if found is None:
            info = self._info
            found = {
                "max_task_retries": info.max_task_retries,
                "retry_exceptions": False,
                "enable_task_events": info.enable_task_events,
                **info.method_options.get(method, {}),
            }
            if isinstance(found["retry_exceptions"], bytes):
                found["retry_exceptions"] = serialization.deserialize(found["retry_exceptions"])
            self._call_defaults[method] = found
        return found

    def __getattr__(self, name: str) -> "ActorMethod":
        info = self.__dict__.get("_info")
        if info is None or name.startswith("__"):
            raise AttributeError(name)
        if name not in info.methods:
            raise AttributeError(f"'{info.class_name}' actor has no method '{name}'")
        return ActorMethod(self, name, info.methods[name])

    def __reduce__(self) -> Any:
        return (ActorHandle, (self._info,))

    def __repr__(self) -> str:
        return f"Actor({self._info.class_name}, {self._info.actor_id})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ActorHandle) and other._info.actor_id == self._info.actor_id

    def __hash__(self) -> int:
        return hash(self._info.actor_id)

    @property
    def actor_id(self) -> ActorID:
        return self._info.actor_id


class ActorMethod:
    def __init__(
        self,
        handle: ActorHandle,
        name: str,
        num_returns: int | str,
        concurrency_group: str | None = None,
        call_options: dict[str, Any] | None = None,
        call_name: str = "",
    ) -> None:
        self._handle = handle
        self._name = name
        self._num_returns = num_returns
        self._concurrency_group = concurrency_group
        # CALL_OPTIONS given to .options(), over the method's (ActorHandle.call_defaults)
        self._call_options = call_options or {}
        self._call_name = call_name  # .options(name=...): the call's name in the state API

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(
            f"Actor methods cannot be called directly. Instead of '{self._name}()', "
            f"use '{self._name}.remote()'."
        )

    def options(
        self,
        *,
        num_returns: int | str | None = None,
        concurrency_group: str | None = None,
        max_task_retries: int | None = None,
        retry_exceptions: bool | list | tuple | None = None,
        name: str | None = None,
        enable_task_events: bool | None = None,
    ) -> "ActorMethod":
        """This call with other options: ``num_returns``, ``concurrency_group`` (one the actor
        defines), ``max_task_retries`` and ``retry_exceptions`` (over the method's and the actor's).
        ``name`` names the call in the state API (``list tasks``), as in Ray;
        ``enable_task_events=False`` keeps it out of there. Any other option is a TypeError here
        (Ray's comes at ``.remote()``)."""
        given = _call_options(
            num_returns=num_returns,
            max_task_retries=max_task_retries,
            retry_exceptions=retry_exceptions,
            enable_task_events=enable_task_events,
        )
        if name is not None:
            check_options({"name": name}, {"name"}, "an actor method call")
        groups = self._handle._info.concurrency_groups
        if concurrency_group is not None and concurrency_group not in groups:
            raise ValueError(
                f"Concurrency group '{concurrency_group}' is not defined by actor "
                f"'{self._handle._info.class_name}'; defined groups: {sorted(groups) or 'none'}"
            )
        return ActorMethod(
            self._handle,
            self._name,
            self._num_returns if num_returns is None else num_returns,
            concurrency_group or self._concurrency_group,
            {**self._call_options, **given},
            self._call_name if name is None else name,
        )

    @shielded
    def remote(self, *args: Any, **kwargs: Any) -> Any:
        runtime = context.runtime()
        core = runtime.core
        info = self._handle._info
        mode = generator_mode(None, self._num_returns)
        num_returns = 1 if mode else cast(int, self._num_returns)  # a str is a generator mode
        task_id, return_ids = new_returns(num_returns)
        call = self._handle.call_defaults(self._name)
        if self._call_options:
            call = {**call, **self._call_options}
        retry_exceptions = call["retry_exceptions"]
        spec = vm.TaskSpec(
            task_id=task_id,
            job_id=runtime.job_id,
            function_id=FunctionID(""),
            function_name=f"{info.class_name}.{self._name}",
            args=[encode_arg(core, a) for a in args],
            kwargs={k: encode_arg(core, v) for k, v in kwargs.items()},
            num_returns=num_returns,
            return_ids=return_ids,
            resources={},
            owner=core.inbox,
            owner_id=core.identity,
            max_retries=call["max_task_retries"],
            retry_exceptions=bool(retry_exceptions),
            actor_id=info.actor_id,
            method_name=self._name,
            generator=mode,
            actor_options={"concurrency_group": self._concurrency_group} if self._concurrency_group else {},
            name=self._call_name,
            task_events=call["enable_task_events"],
        )
        if retry_exceptions:
            core.tasks.retry_on_exceptions(task_id, retry_exceptions)
        if mode:
            return submit_generator(core, spec, functools.partial(core.submit_actor_call, info=info))
        refs = core.submit_actor_call(spec, info)
        return refs[0] if num_returns == 1 else refs


@shielded
def get_actor(name: str, namespace: str | None = None) -> ActorHandle:
    """The handle of the live actor named ``name`` in ``namespace`` (None: this job's namespace).

    Raises:
        ValueError: there is no such actor, or ``name`` or ``namespace`` is empty.
        TypeError: ``namespace`` is not a str.
    """
    if not name:
        raise ValueError("Please supply a non-empty value to get_actor")
    if namespace is not None:
        check_namespace(namespace)
    core = context.runtime_or_auto_init().core
    where = namespace or context.current_namespace()
    reply = core.request(core.gcs, lambda r: am.GetNamedActor(r, name, where))
    if reply.info is None:
        raise ValueError(
            f"Failed to look up actor with name '{name}'. This could because 1. You are trying "
            f"to look up a named actor you didn't create. 2. The named actor died. "
            f"3. You did not use a namespace matching the namespace of the actor."
        )
    return ActorHandle(reply.info)


@shielded
def kill(actor: ActorHandle, *, no_restart: bool = True) -> None:
    """Kill the actor's process; with ``no_restart`` it is not restarted and calls fail."""
    if not isinstance(actor, ActorHandle):
        raise ValueError(f"ray.kill() only supports actor handles, got {type(actor).__name__}")
    core = context.runtime_or_auto_init().core
    if no_restart:
        with core.lock:
            core.actor_calls.kill(actor.actor_id)
    core.transport.send(core.gcs, am.KillActor(actor.actor_id, no_restart))


class ActorExit(SystemExit):
    """Raised by exit_actor() in the actor's method; the worker ends the actor for good."""


def exit_actor() -> None:
    """End the current actor on purpose, as ``ray.actor.exit_actor``: it is not restarted, the
    call that made it and the calls queued after it fail with ActorDiedError (a RayActorError),
    and atexit handlers run.

    Raises:
        TypeError: outside an actor (in the driver or a plain task).
    """
    runtime = context.runtime_or_none()
    if runtime is None or runtime.is_driver or getattr(runtime, "actor_id", None) is None:
        raise TypeError(
            "exit_actor() can only be called inside an actor (this is a driver or a task); "
            "use ray.kill(handle) to end an actor from outside"
        )
    raise ActorExit(0)


def list_named_actors(all_namespaces: bool = False) -> list:
    """The names of the live named actors of this job's namespace; with ``all_namespaces``,
    ``{"name": ..., "namespace": ...}`` of every named actor in the cluster, as in Ray."""
    core = context.runtime().core
    where = None if all_namespaces else context.current_namespace()
    pairs = core.request(core.gcs, lambda r: am.ListNamedActors(r, where)).names
    if all_namespaces:
        return [{"name": name, "namespace": namespace} for namespace, name in pairs]
    return [name for _, name in pairs]
