"""``ray.util.metrics``: custom application metrics, ``Counter``, ``Gauge`` and ``Histogram``.

Usable in drivers, tasks and actors. Each records into its process's registry
(babyray/api/metric_registry.py); the process reports the values to the GCS, which serves them
in Prometheus text format when the cluster was started with a metrics export port
(``init(_metrics_export_port=N)``, ``babyray start --head --metrics-export-port N``); see
docs/design.md, "Custom metrics".

The checks and their errors are Ray's: an empty name is a ``ValueError``; a name Prometheus
refuses (letters, digits, ``_`` and ``:``, not starting with a digit) is a ``UserWarning`` and
the metric records nothing; ``tag_keys`` must be a tuple of str; every declared tag needs a
value (from the call's ``tags`` or ``set_default_tags``), and tag values must be str; a counter
only goes up; a histogram needs positive boundaries. Beyond Ray: a tag not declared in
``tag_keys`` is refused in a record call too (Ray refuses it in ``set_default_tags``), and a
histogram's boundaries must be increasing.
"""

from __future__ import annotations

import re
import warnings
from typing import Any

from babyray.api.metric_registry import COUNTER, GAUGE, HISTOGRAM, REGISTRY

# The metric name Prometheus accepts.
_VALID_METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")


def _discarded(name: str) -> bool:
    """Whether a metric of this name records nothing (after a warning), as in Ray."""
    if len(name) == 0:
        raise ValueError("Empty name is not allowed. Please provide a metric name.")
    if not _VALID_METRIC_NAME.match(name):
        warnings.warn(
            f"Invalid metric name: {name}. Metric will be discarded "
            "and data will not be collected or published. "
            "Metric names can only contain letters, numbers, _, and :. "
            "Metric names cannot start with numbers.",
            UserWarning,
            stacklevel=3,
        )
        return True
    return False


class Metric:
    """What ``Counter``, ``Gauge`` and ``Histogram`` share: a name, a description, tag keys and
    default tag values."""

    _kind = ""

    def __init__(self, name: str, description: str = "", tag_keys: tuple[str, ...] | None = None) -> None:
        self._discard_metric = _discarded(name)
        self._name = name
        self._description = description
        self._default_tags: dict[str, str] = {}
        self._tag_keys = tag_keys or tuple()
        if not isinstance(self._tag_keys, tuple):
            raise TypeError(f"tag_keys should be a tuple type, got: {type(self._tag_keys)}")
        for key in self._tag_keys:
            if not isinstance(key, str):
                raise TypeError(f"Tag keys must be str, got {type(key)}.")

    def _declare(self, boundaries: tuple[float, ...] = ()) -> None:
        if not self._discard_metric:
            REGISTRY.declare(self._name, self._kind, self._description, boundaries)

    def set_default_tags(self, default_tags: dict[str, str]) -> Metric:
        """Tag values used by every record call that does not give its own; returns the metric."""
        for key, value in default_tags.items():
            if key not in self._tag_keys:
                raise ValueError(f"Unrecognized tag key {key}.")
            if not isinstance(value, str):
                raise TypeError(f"Tag values must be str, got {type(value)}.")
        self._default_tags = default_tags
        return self

    def _final_tags(self, tags: dict[str, str] | None) -> tuple:
        """The series' tags, ``((key, value), ...)`` in declared order; the call's over the defaults."""
        if tags:
            for key, value in tags.items():
                if key not in self._tag_keys:
                    raise ValueError(f"Unrecognized tag key {key}.")
                if not isinstance(value, str):
                    raise TypeError(f"Tag values must be str, got {type(value)}.")
            final = {**self._default_tags, **tags}
        else:
            final = self._default_tags
        missing = [key for key in self._tag_keys if key not in final]
        if missing:
            raise ValueError(f"Missing value for tag key(s): {','.join(missing)}.")
        return tuple((key, final[key]) for key in self._tag_keys)

    @property
    def info(self) -> dict[str, Any]:
        """The metric's name, description, tag keys and default tags."""
        return {
            "name": self._name,
            "description": self._description,
            "tag_keys": self._tag_keys,
            "default_tags": self._default_tags,
        }


def _check_number(value: Any) -> None:
    if not isinstance(value, (int, float)):
        raise TypeError(f"value must be int or float, got {type(value)}.")


class Counter(Metric):
    """A cumulative metric that only goes up; a Prometheus counter (``ray_<name>_total``)."""

    _kind = COUNTER

    def __init__(self, name: str, description: str = "", tag_keys: tuple[str, ...] | None = None) -> None:
        super().__init__(name, description, tag_keys)
        self._declare()

    def __reduce__(self) -> tuple:
        return type(self), (self._name, self._description, self._tag_keys)

    def inc(self, value: int | float = 1.0, tags: dict[str, str] | None = None) -> None:
        """Add ``value`` (> 0, default 1) to the series of these tags."""
        _check_number(value)
        if value <= 0:
            raise ValueError(f"value must be >0, got {value}")
        final = self._final_tags(tags)
        if not self._discard_metric:
            REGISTRY.inc(self._name, final, value)


class Gauge(Metric):
    """The last value set; a Prometheus gauge (``ray_<name>``)."""

    _kind = GAUGE

    def __init__(self, name: str, description: str = "", tag_keys: tuple[str, ...] | None = None) -> None:
        super().__init__(name, description, tag_keys)
        self._declare()

    def __reduce__(self) -> tuple:
        return type(self), (self._name, self._description, self._tag_keys)

    def set(self, value: int | float | None, tags: dict[str, str] | None = None) -> None:
        """Set the series of these tags to ``value``; ``None`` does nothing."""
        if value is None:
            return
        _check_number(value)
        final = self._final_tags(tags)
        if not self._discard_metric:
            REGISTRY.set(self._name, final, value)


class Histogram(Metric):
    """Observations counted in buckets; a Prometheus histogram (``ray_<name>_bucket``, ``_sum``,
    ``_count``). ``boundaries`` are the buckets' upper bounds (a last bucket, ``+Inf``, holds
    the rest)."""

    _kind = HISTOGRAM

    def __init__(
        self,
        name: str,
        description: str = "",
        boundaries: list[float] | None = None,
        tag_keys: tuple[str, ...] | None = None,
    ) -> None:
        super().__init__(name, description, tag_keys)
        if boundaries is None or len(boundaries) == 0:
            raise ValueError(
                "boundaries argument should be provided when using the Histogram class. "
                'e.g., Histogram("name", boundaries=[1.0, 2.0])'
            )
        for i, boundary in enumerate(boundaries):
            if boundary <= 0:
                raise ValueError(
                    f"Invalid `boundaries` argument at index {i}, {boundaries}. "
                    "Use positive values for the arguments."
                )
        if any(low >= high for low, high in zip(boundaries, boundaries[1:], strict=False)):
            raise ValueError(f"Invalid `boundaries` argument {boundaries}: they must be increasing.")
        self.boundaries = boundaries
        self._declare(tuple(float(b) for b in boundaries))

    def __reduce__(self) -> tuple:
        return type(self), (self._name, self._description, self.boundaries, self._tag_keys)

    def observe(self, value: int | float, tags: dict[str, str] | None = None) -> None:
        """Count ``value`` in its bucket of the series of these tags."""
        _check_number(value)
        final = self._final_tags(tags)
        if not self._discard_metric:
            REGISTRY.observe(self._name, final, value)

    @property
    def info(self) -> dict[str, Any]:
        info = super().info
        info.update({"boundaries": self.boundaries})
        return info


__all__ = ["Counter", "Gauge", "Histogram"]
