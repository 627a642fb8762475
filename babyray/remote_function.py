"""Ray's ``ray.remote_function`` module, for ``from ray.remote_function import RemoteFunction``."""

from __future__ import annotations

from babyray.api.remote_function import RemoteFunction

__all__ = ["RemoteFunction"]
