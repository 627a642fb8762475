"""Remote functions: ``@remote`` on a function, ``.remote()`` and ``.options()``."""

from __future__ import annotations

import inspect
from typing import Any, Callable

from babyray import serialization
from babyray.api import context
from babyray.api.core import CoreClient, function_id_of
from babyray.api.generator import generator_mode, submit_generator
from babyray.api.object_ref import ObjectRef
from babyray.api.options import TASK_OPTIONS, check_options, max_retries, resource_request
from babyray.api.task_interrupts import shielded
from babyray.api.task_submission import new_returns
from babyray.ids import FunctionID
from babyray.protocol import values as vm
from babyray.runtime_env.validation import merge
from babyray.util.placement_group import in_placement_group


class RemoteFunction:
    """A function that runs as a task. Calling it directly raises TypeError, as in Ray."""

    def __init__(self, function: Callable, options: dict) -> None:
        self._function = function
        self._options = check_options(dict(options), TASK_OPTIONS, "a remote function")
        # As in Ray, a GPU function's worker exits after each run unless @remote says otherwise
        # (the GPU memory a library took is freed); .options() keeps what @remote decided.
        self._options.setdefault("max_calls", 1 if (self._options.get("num_gpus") or 0) > 0 else 0)
        self._signature = inspect.signature(function)
        self._blob: bytes | None = None
        self._function_id: FunctionID | None = None
        self.__name__ = getattr(function, "__name__", "remote_function")
        self.__doc__ = function.__doc__

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(
            f"Remote functions cannot be called directly. Instead of running "
            f"'{self.__name__}()', try '{self.__name__}.remote()'."
        )

    def __reduce__(self) -> Any:
        return (RemoteFunction, (self._function, self._options))

    def options(self, **options: Any) -> "RemoteFunction":
        """A copy of this function with some options changed (the function is shared).

        Raises:
            ValueError: ``max_calls`` is given (as in Ray, only ``@remote`` sets it).
        """
        check_options(dict(options), TASK_OPTIONS, "a remote function")  # as Ray: each value first
        if "max_calls" in options:
            raise ValueError("Setting 'max_calls' is not supported in '.options()'.")
        view = RemoteFunction(self._function, {**self._options, **options})
        view._blob, view._function_id = self._blob, self._function_id
        return view

    def _pickled(self) -> tuple[FunctionID, bytes]:
        if self._blob is None:  # pickled at first use, so it may call functions defined later
            self._blob = serialization.dumps_function(self._function)
            self._function_id = function_id_of(self._blob)
        assert self._function_id is not None, "set with the blob"
        return self._function_id, self._blob

    @shielded
    def remote(self, *args: Any, **kwargs: Any) -> Any:
        """Submit the function as a task; returns an ObjectRef (or a list for num_returns != 1), or
        for a generator function an ObjectRefGenerator (see api/generator.py)."""
        try:
            self._signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise TypeError(f"{self.__name__}.remote(): {exc}") from None
        runtime = context.runtime_or_auto_init()
        function_id, blob = self._pickled()
        core = runtime.core
        core.ensure_function(function_id, self.__name__, blob)
        options = self._options
        resources, strategy = in_placement_group(
            options, resource_request(options, 1.0), f"task {self.__name__}"
        )
        mode = generator_mode(self._function, options.get("num_returns"))
        num_returns = 1 if mode else options.get("num_returns", 1)
        task_id, return_ids = new_returns(num_returns)
        retry_exceptions = options.get("retry_exceptions", False)
        spec = vm.TaskSpec(
            task_id=task_id,
            job_id=runtime.job_id,
            function_id=function_id,
            function_name=self.__name__,
            args=[encode_arg(core, a) for a in args],
            kwargs={k: encode_arg(core, v) for k, v in kwargs.items()},
            num_returns=num_returns,
            return_ids=return_ids,
            resources=resources,
            owner=core.inbox,
            owner_id=core.identity,
            max_retries=max_retries(options),
            retry_exceptions=bool(retry_exceptions),
            scheduling_strategy=strategy,
            generator=mode,
            runtime_env=merge(runtime.runtime_env, options.get("runtime_env")),
            namespace=context.current_namespace(),
            max_calls=options["max_calls"],
            name=options.get("name") or "",
            task_events=options.get("enable_task_events", True),
        )
        if retry_exceptions:
            core.tasks.retry_on_exceptions(task_id, retry_exceptions)
        if mode:
            return submit_generator(core, spec, core.submit)
        refs = core.submit(spec)
        return refs[0] if num_returns == 1 else refs


def encode_arg(core: CoreClient, value: Any) -> Any:
    """A top-level ObjectRef stays a ref (resolved by the owner); a small value is pickled
    inline; a large one is put in the object store first and passed as a ref, as in Ray."""
    if isinstance(value, ObjectRef):
        return value
    serialized = serialization.serialize(value)
    if serialized.total_size <= core.io.inline_threshold:
        return vm.InlineValue(serialized.to_bytes())
    return core.io.put_serialized(serialized)
