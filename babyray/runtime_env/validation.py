"""Checking a ``runtime_env`` and merging it with its parent's, with Ray's documented rules.

A validated environment is a plain dict with only the keys babyray supports, local paths
made absolute and Python module objects turned into their paths. ``working_dir`` and
``py_modules`` name either a local path (only in ``init()``: the job level, as in Ray) or a
``gcs://`` package already stored in the cluster (what a local path becomes once packed).
"""

from __future__ import annotations

import hashlib
import json
import os
import types
from typing import Any

SUPPORTED_KEYS = ("env_vars", "working_dir", "py_modules", "excludes")
# Ray's other keys: known to Ray, not (yet) to babyray.
RAY_ONLY_KEYS = (
    "pip",
    "conda",
    "uv",
    "container",
    "image_uri",
    "java_jars",
    "nsight",
    "mpi",
    "worker_process_setup_hook",
    "config",
    "py_executable",
    "_ray_release",
    "docker",
)
PACKAGE_SCHEME = "gcs://"


def validate(runtime_env: Any, *, job_level: bool) -> dict:
    """The normalized form of ``runtime_env`` (``{}`` for None or empty).

    Raises:
        TypeError: ``runtime_env`` or one of its fields has the wrong type.
        ValueError: an unsupported or unknown key, a path that does not exist, a remote URI, or
            a local ``working_dir``/``py_modules`` path below the job level.
    """
    if runtime_env is None:
        return {}
    if not isinstance(runtime_env, dict):
        raise TypeError(f"runtime_env must be a dict or a RuntimeEnv, got {type(runtime_env).__name__}")
    for key in runtime_env:
        if key not in SUPPORTED_KEYS:
            kind = "is not supported by babyray" if key in RAY_ONLY_KEYS else "is not a runtime_env field"
            raise ValueError(f"runtime_env key {key!r} {kind}; supported keys: {', '.join(SUPPORTED_KEYS)}")
    env: dict = {}
    if runtime_env.get("env_vars"):
        env["env_vars"] = _env_vars(runtime_env["env_vars"])
    if runtime_env.get("working_dir") is not None:
        env["working_dir"] = _working_dir(runtime_env["working_dir"], job_level)
    if runtime_env.get("py_modules"):
        env["py_modules"] = _py_modules(runtime_env["py_modules"], job_level)
    if runtime_env.get("excludes"):
        excludes = runtime_env["excludes"]
        if not isinstance(excludes, (list, tuple)) or not all(isinstance(p, str) for p in excludes):
            raise TypeError(f"runtime_env['excludes'] must be a list of str, got {excludes!r:.100}")
        if job_level:  # it only shapes the packages made from local paths
            env["excludes"] = list(excludes)
    return env


def _env_vars(env_vars: Any) -> dict:
    if not isinstance(env_vars, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in env_vars.items()
    ):
        raise TypeError(f"runtime_env['env_vars'] must be a Dict[str, str], got {env_vars!r:.100}")
    return dict(env_vars)


def _local_or_package(value: Any, field: str, job_level: bool) -> str:
    """A ``gcs://`` package as is, or a local path made absolute (checked to exist)."""
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str):
        raise TypeError(f"runtime_env['{field}'] entries must be paths (str), got {type(value).__name__}")
    if value.startswith(PACKAGE_SCHEME):
        return value
    if "://" in value:
        raise ValueError(
            f"runtime_env['{field}']={value!r}: remote URIs are not supported by babyray; "
            "give a local path (in init()), which is uploaded to the cluster"
        )
    if not job_level:
        raise ValueError(
            f"runtime_env['{field}']={value!r}: a local path can only be set per job, in "
            "init(runtime_env=...), not per task or actor (as in Ray)"
        )
    path = os.path.abspath(os.path.expanduser(value))
    if not os.path.exists(path):
        raise ValueError(f"runtime_env['{field}']={value!r}: {path} does not exist")
    return path


def _working_dir(value: Any, job_level: bool) -> str:
    path = _local_or_package(value, "working_dir", job_level)
    if not path.startswith(PACKAGE_SCHEME) and not os.path.isdir(path):
        raise ValueError(f"runtime_env['working_dir']={value!r}: {path} is not a directory")
    return path


def _py_modules(value: Any, job_level: bool) -> list:
    if not isinstance(value, (list, tuple)):
        raise TypeError(f"runtime_env['py_modules'] must be a list, got {type(value).__name__}")
    modules = []
    for entry in value:
        if isinstance(entry, types.ModuleType):
            entry = _module_path(entry)
        path = _local_or_package(entry, "py_modules", job_level)
        if not path.startswith(PACKAGE_SCHEME) and not (os.path.isdir(path) or path.endswith(".py")):
            raise ValueError(
                f"runtime_env['py_modules'] entry {entry!r}: give a package directory or a .py "
                "file (wheels are not supported by babyray)"
            )
        modules.append(path)
    return modules


def _module_path(module: types.ModuleType) -> str:
    """A package's directory, or a single-file module's file."""
    file = getattr(module, "__file__", None)
    if not file:
        raise ValueError(f"runtime_env['py_modules']: module {module.__name__!r} has no file to upload")
    return os.path.dirname(file) if os.path.basename(file) == "__init__.py" else file


def merge(parent: dict, child: dict | None) -> dict:
    """The environment of a task or actor whose own is ``child``, started by ``parent``'s.

    As Ray documents: without its own environment it inherits its parent's (the job's, or
    the calling task's or actor's); with one, ``env_vars`` are merged (the child's win) and
    every other field of the child replaces the parent's.
    """
    if not child:
        return parent
    merged = {**parent, **child}
    if parent.get("env_vars") and child.get("env_vars"):
        merged["env_vars"] = {**parent["env_vars"], **child["env_vars"]}
    return merged


def env_key(env: dict | None) -> str:
    """Which worker pool runs tasks of ``env``: ``""`` for none, else a digest of it."""
    if not env:
        return ""
    return hashlib.sha1(json.dumps(env, sort_keys=True).encode()).hexdigest()[:16]
