"""Metric values a driver recorded before ``init()`` are its own: the admin and the workers
forked from it do not report them again under their names."""

from __future__ import annotations

from conftest import assert_session_clean
from test_metrics import find, wait_for

import babyray as ray
from babyray.cluster import free_port
from babyray.util.metrics import Counter, Gauge


def test_a_value_recorded_before_init_is_reported_by_the_driver_alone(tmp_path):
    Counter("early_count", description="Counted before init.").inc(4)
    port = free_port()
    info = ray.init(num_cpus=1, temp_dir=str(tmp_path), _metrics_export_port=port).address_info
    try:

        @ray.remote
        def touch() -> int:
            Gauge("late_gauge", description="Set in a task.").set(1)
            return 1

        assert ray.get(touch.remote(), timeout=60) == 1
        wait_for(port, "ray_late_gauge", 1.0)
        text = wait_for(port, "ray_early_count_total", 4.0)
        series = find(text, "ray_early_count_total")
        assert len(series) == 1 and series[0][0]["WorkerId"].startswith("driver"), series
    finally:
        ray.shutdown()
    assert_session_clean(info["session_dir"])
