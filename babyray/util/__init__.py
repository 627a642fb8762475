"""``babyray.util``: helpers outside the core API, as in ``ray.util``."""
from __future__ import annotations

from babyray.api.actor import list_named_actors
from babyray.util.placement_group import (get_current_placement_group, get_placement_group, placement_group,
                                          placement_group_table, remove_placement_group)

__all__ = [
    "get_current_placement_group", "get_placement_group", "list_named_actors", "placement_group",
    "placement_group_table", "remove_placement_group",
]
