"""Validation of ``@remote`` / ``.options()`` arguments, with Ray's names and defaults."""

from __future__ import annotations

from babyray import config
from babyray.runtime_env.validation import validate

PLACEMENT_GROUP_OPTIONS = {
    "placement_group",
    "placement_group_bundle_index",
    "placement_group_capture_child_tasks",
}
TASK_OPTIONS = {
    "num_cpus",
    "num_gpus",
    "resources",
    "num_returns",
    "max_retries",
    "retry_exceptions",
    "scheduling_strategy",
    "name",
    "memory",
    "runtime_env",
    "max_calls",
    "accelerator_type",
    "enable_task_events",
} | PLACEMENT_GROUP_OPTIONS
ACTOR_OPTIONS = {
    "num_cpus",
    "num_gpus",
    "resources",
    "max_restarts",
    "max_task_retries",
    "max_concurrency",
    "name",
    "namespace",
    "lifetime",
    "scheduling_strategy",
    "memory",
    "runtime_env",
    "get_if_exists",
    "concurrency_groups",
    "accelerator_type",
    "max_pending_calls",
    "allow_out_of_order_execution",
    "enable_task_events",
} | PLACEMENT_GROUP_OPTIONS


# Options whose value is a count, as Ray checks them: an int or None, at least 0, or at least
# -1 where -1 means without limit.
COUNTS_WITHOUT_LIMIT = {"max_retries", "max_restarts", "max_task_retries", "max_pending_calls"}
BOOLS = {"get_if_exists", "allow_out_of_order_execution", "enable_task_events"}
# A task or actor with accelerator_type="T" needs this much of the node resource
# "accelerator_type:T", as in Ray: a node offers it with resources={"accelerator_type:T": 1}.
ACCELERATOR_TYPE_PREFIX = "accelerator_type:"
ACCELERATOR_TYPE_AMOUNT = 0.001
COUNTS = {"max_calls", "max_concurrency"}
QUANTITIES = {"num_cpus", "num_gpus", "memory"}  # a non-negative number or None
LIFETIMES = (None, "detached", "non_detached")


def check_options(options: dict, allowed: set, what: str) -> dict:
    """``options`` if each is one ``allowed`` for ``what`` and of a type and value Ray accepts.

    Raises:
        ValueError: an unknown option, or a value out of its range.
        TypeError: a value of the wrong type.
    """
    unknown = set(options) - allowed
    if unknown:
        raise ValueError(
            f"Invalid option(s) for {what}: {', '.join(sorted(unknown))}; "
            f"valid options are {', '.join(sorted(allowed))}"
        )
    for key, value in options.items():
        _check_value(key, value)
    resources = options.get("resources")
    if resources is not None:
        if not isinstance(resources, dict) or not all(
            isinstance(v, (int, float)) and v >= 0 for v in resources.values()
        ):
            raise ValueError(f"resources must be a dict of non-negative numbers, got {resources!r}")
        if "CPU" in resources or "GPU" in resources:
            raise ValueError("Use num_cpus and num_gpus, not resources={'CPU'/'GPU': ...}")
    num_returns = options.get("num_returns")
    if (
        num_returns is not None
        and num_returns not in ("streaming", "dynamic")
        and (not isinstance(num_returns, int) or num_returns < 0)
    ):
        raise ValueError(
            f"num_returns must be a non-negative int, 'streaming' or 'dynamic', got {num_returns!r}"
        )
    if "runtime_env" in options:
        options["runtime_env"] = validate(options["runtime_env"], job_level=False)
    if options.get("namespace") is not None:
        check_namespace(options["namespace"])
    return options


def _check_value(key: str, value: object) -> None:
    """Raise if ``value`` is not one Ray accepts for option ``key`` (other keys: no check here)."""
    shown = f"{type(value).__name__}: {value!r}"
    if key in QUANTITIES:
        if value is not None and not isinstance(value, (int, float)):
            raise TypeError(f"{key} must be a number or None, got {shown}")
        if value is not None and value < 0:
            raise ValueError(f"{key} must be a non-negative number, got {value!r}")
    elif key in COUNTS or key in COUNTS_WITHOUT_LIMIT:
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            raise TypeError(f"{key} must be an int or None, got {shown}")
        lowest = -1 if key in COUNTS_WITHOUT_LIMIT else 0
        if value is not None and value < lowest:
            without_limit = ", or -1 for no limit" if lowest == -1 else ""
            raise ValueError(f"{key} must be 0 or more{without_limit}, got {value!r}")
    elif key == "name":
        if value is not None and not isinstance(value, str):
            raise TypeError(f"name must be a str or None, got {shown}")
    elif key == "lifetime":
        if value not in LIFETIMES:
            raise ValueError(f"lifetime must be one of 'detached', 'non_detached' and None, got {value!r}")
    elif key in BOOLS:
        if not isinstance(value, bool):
            raise TypeError(f"{key} must be a bool, got {shown}")
    elif key == "accelerator_type":
        if value is not None and not isinstance(value, str):
            raise TypeError(f"accelerator_type must be a str or None, got {shown}")
    elif key == "retry_exceptions":
        if not isinstance(value, (bool, list, tuple)):
            raise TypeError(f"retry_exceptions must be a bool or a list of exception classes, got {shown}")
        if not isinstance(value, bool) and not all(
            isinstance(kind, type) and issubclass(kind, Exception) for kind in value
        ):
            raise ValueError(f"retry_exceptions must be a bool or a list of exception classes, got {value!r}")


def check_namespace(namespace: object) -> str:
    """``namespace`` if it names a namespace (a non-empty str), as Ray checks it.

    Raises:
        TypeError: not a str.
        ValueError: the empty string.
    """
    if not isinstance(namespace, str):
        raise TypeError(f"namespace must be None or a string, got {type(namespace).__name__}: {namespace!r}")
    if namespace == "":
        raise ValueError('"" is not a valid namespace. Pass None to not specify a namespace.')
    return namespace


def resource_request(options: dict, default_cpus: float) -> dict:
    request = {
        "CPU": float(
            options.get("num_cpus", default_cpus) if options.get("num_cpus") is not None else default_cpus
        )
    }
    if options.get("num_gpus"):
        request["GPU"] = float(options["num_gpus"])
    for name, amount in (options.get("resources") or {}).items():
        request[name] = float(amount)
    if options.get("accelerator_type") is not None:
        request[ACCELERATOR_TYPE_PREFIX + options["accelerator_type"]] = ACCELERATOR_TYPE_AMOUNT
    return {k: v for k, v in request.items() if v > 0}


def max_retries(options: dict) -> int:
    value = options.get("max_retries")
    return config.Settings().task_max_retries if value is None else int(value)
