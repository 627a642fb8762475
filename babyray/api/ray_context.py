"""What ``init()`` returns: Ray's ``RayContext``, the connected driver's context.

Its ``address_info`` holds where the cluster and this driver's session are. As in Ray it is
also a read-only mapping over ``address_info`` (``ctx["session_dir"]``, deprecated there and
here: a DeprecationWarning once per process) and a context manager whose exit calls
``shutdown()``: ``with babyray.init(): ...``.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Iterator, Mapping
from typing import Any

__all__ = ["RayContext"]

_warned: set[str] = set()  # the kinds of deprecated use already warned of in this process


def _deprecated(kind: str, use: str, instead: str) -> None:
    if kind not in _warned:
        _warned.add(kind)
        warnings.warn(f"{use} is deprecated: use {instead} instead.", DeprecationWarning, stacklevel=3)


class RayContext(Mapping):
    """The context of a driver connected by ``init()``.

    Attributes:
        address_info: ``address`` (the head, HOST:PORT), ``gcs_address`` (the same),
            ``node_ip_address``, ``node_id`` (this driver's node), ``job_id``, ``session_dir``
            and ``webui_url`` (None: babyray has no dashboard).
        dashboard_url: None (no dashboard).
        python_version: this interpreter's, "3.x.y".
        ray_version: babyray's version.
    """

    def __init__(self, address_info: dict[str, Any]) -> None:
        from babyray import __version__

        self.address_info = address_info
        self.dashboard_url: str | None = address_info.get("webui_url")
        self.python_version = "{}.{}.{}".format(*sys.version_info[:3])
        self.ray_version = __version__
        self.ray_commit = ""
        self.protocol_version: str | None = None

    def __getitem__(self, key: str) -> Any:
        _deprecated("getitem", f'Accessing values through ctx["{key}"]', f'ctx.address_info["{key}"]')
        return self.address_info[key]

    def __len__(self) -> int:
        _deprecated("len", "len(ctx)", "len(ctx.address_info)")
        return len(self.address_info)

    def __iter__(self) -> Iterator[str]:
        _deprecated("iter", "iter(ctx)", "iter(ctx.address_info)")
        return iter(self.address_info)

    def __enter__(self) -> RayContext:
        return self

    def __exit__(self, *exc: object) -> None:
        self.disconnect()

    def disconnect(self) -> None:
        """``shutdown()``: this driver leaves the cluster (a private one is stopped)."""
        from babyray.api.public import shutdown

        shutdown()

    def __repr__(self) -> str:
        return f"RayContext(address_info={self.address_info!r})"
