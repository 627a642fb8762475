"""``babyray.util``: helpers outside the core API, as in ``ray.util``."""
from __future__ import annotations

from babyray.api.actor import list_named_actors

__all__ = ["list_named_actors"]
