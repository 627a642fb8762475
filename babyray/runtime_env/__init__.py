"""``runtime_env``: the environment (env vars, files, modules) tasks and actors run in, as in Ray.

``RuntimeEnv`` is Ray's typed form of the ``runtime_env`` dict; a plain dict works the same.
"""

from __future__ import annotations

import json
from typing import Any


class RuntimeEnv(dict):
    """A runtime environment: ``RuntimeEnv(env_vars=..., working_dir=..., py_modules=..., excludes=...)``.

    Interchangeable with a plain dict wherever ``runtime_env=`` is accepted; validated when
    used (``init()``, ``@remote``, ``.options()``).
    """

    def __init__(self, **fields: Any) -> None:
        super().__init__({k: v for k, v in fields.items() if v is not None})

    def to_dict(self) -> dict:
        return dict(self)

    def serialize(self) -> str:
        return json.dumps(self, sort_keys=True)

    def env_vars(self) -> dict:
        return dict(self.get("env_vars", {}))

    def working_dir(self) -> str:
        return self.get("working_dir", "")

    def py_modules(self) -> list:
        return list(self.get("py_modules", []))


__all__ = ["RuntimeEnv"]
