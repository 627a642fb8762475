"""Custom metrics (``ray.util.metrics``): Counter, Gauge and Histogram recorded in a driver,
tasks and actors, reported to the GCS and scraped in Prometheus text format from the head's
metrics export port; Ray's checks and errors; nothing listening without the option, and
nothing left after shutdown."""

from __future__ import annotations

import os
import pickle
import re
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from cli_cluster import assert_gone, cli, cli_env, start
from conftest import assert_session_clean

import babyray as ray
from babyray.api.metric_registry import MetricRegistry
from babyray.cluster import free_port
from babyray.gcs.metrics_table import MetricsTable
from babyray.session import session_pids
from babyray.util.metrics import Counter, Gauge, Histogram

SCRAPE_DEADLINE = 30.0
SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def scrape(port: int, path: str = "/metrics") -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as reply:
        assert reply.status == 200
        assert reply.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return reply.read().decode("utf-8")


def samples(text: str) -> list[tuple[str, dict, float]]:
    """The page's samples: (name, labels, value)."""
    found = []
    for line in text.splitlines():
        if line.startswith("#") or not line:
            continue
        match = SAMPLE.match(line)
        assert match, f"not a Prometheus sample line: {line!r}"
        name, labels, value = match.groups()
        found.append((name, dict(LABEL.findall(labels or "")), float(value)))
    return found


def find(text: str, name: str, **labels: str) -> list[tuple[dict, float]]:
    return [(got, value) for n, got, value in samples(text) if n == name and labels.items() <= got.items()]


def wait_for(port: int, name: str, value: float, **labels: str) -> str:
    """The page once a sample ``name`` with ``labels`` has ``value``; fails after the deadline."""
    deadline = time.monotonic() + SCRAPE_DEADLINE
    while True:
        text = scrape(port)
        if any(v == value for _, v in find(text, name, **labels)):
            return text
        assert time.monotonic() < deadline, f"no {name}{labels} = {value} in:\n{text}"
        time.sleep(0.2)


def listening_ports(pid: int) -> set[int]:
    """The TCP ports process ``pid`` listens on (its socket inodes matched in /proc/net/tcp)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = set()
    for table in ("tcp", "tcp6"):
        with open(f"/proc/{pid}/net/{table}") as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                if fields[3] == "0A" and fields[9] in inodes:  # LISTEN
                    ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def gcs_own_ports(session_dir: str) -> set[int]:
    """The ports the session's GCS listens on that no other process of the session shares
    (sockets inherited through the admin's fork are everyone's): its Thespian port, and the
    metrics port if it serves one."""
    components = {}
    for pid in session_pids(session_dir):
        with open(os.path.join(session_dir, "pids", str(pid))) as f:
            components[pid] = f.read()
    [gcs] = [pid for pid, component in components.items() if component == "gcs"]
    others = set().union(*(listening_ports(pid) for pid in components if pid != gcs))
    return listening_ports(gcs) - others


def refused(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(2)
        return s.connect_ex(("127.0.0.1", port)) != 0


@pytest.fixture(scope="module")
def metrics_cluster(tmp_path_factory):
    """A 2-CPU cluster serving metrics on a free port; yields (address_info, port)."""
    port = free_port()
    info = ray.init(
        num_cpus=2,
        temp_dir=str(tmp_path_factory.mktemp("metrics")),
        object_store_memory=128 * 1024 * 1024,
        _metrics_export_port=port,
    ).address_info
    try:
        yield info, port
    finally:
        ray.shutdown()
    assert_session_clean(info["session_dir"])
    assert refused(port), "the metrics port still answers after shutdown"


# Ray's example (doc/source/ray-core/doc_code/metrics_example.py), its actor unchanged.
@ray.remote
class MyActor:
    def __init__(self, name):
        self._curr_count = 0
        self.counter = Counter(
            "num_requests", description="Number of requests processed by the actor.", tag_keys=("actor_name",)
        )
        self.counter.set_default_tags({"actor_name": name})
        self.gauge = Gauge(
            "curr_count",
            description="Current count held by the actor. Goes up and down.",
            tag_keys=("actor_name",),
        )
        self.gauge.set_default_tags({"actor_name": name})
        self.histogram = Histogram(
            "request_latency",
            description="Latencies of requests in ms.",
            boundaries=[0.1, 1],
            tag_keys=("actor_name",),
        )
        self.histogram.set_default_tags({"actor_name": name})

    def process_request(self, num):
        start = time.time()
        self._curr_count += num
        self.counter.inc()
        self.gauge.set(self._curr_count)
        self.histogram.observe(1000 * (time.time() - start))
        return self._curr_count


def test_ray_example_actor_metrics_are_scraped_with_their_tags(metrics_cluster):
    _, port = metrics_cluster
    actor = MyActor.remote("my_actor")
    actor.process_request.remote(-10)
    assert ray.get(actor.process_request.remote(5), timeout=60) == -5
    text = wait_for(port, "ray_num_requests_total", 2.0, actor_name="my_actor")
    text = wait_for(port, "ray_request_latency_count", 2.0, actor_name="my_actor")
    assert "# HELP ray_num_requests_total Number of requests processed by the actor." in text
    assert "# TYPE ray_num_requests_total counter" in text
    assert "# TYPE ray_curr_count gauge" in text
    assert "# TYPE ray_request_latency histogram" in text
    [(labels, value)] = find(text, "ray_curr_count", actor_name="my_actor")
    assert value == -5.0
    assert labels["Component"] == "core_worker" and labels["NodeAddress"] == "127.0.0.1"
    assert labels["SessionName"] == os.path.basename(metrics_cluster[0]["session_dir"])
    actor_worker = labels["WorkerId"]
    buckets = {
        labels["le"]: v for labels, v in find(text, "ray_request_latency_bucket", actor_name="my_actor")
    }
    assert list(buckets) == ["0.1", "1.0", "+Inf"] and buckets["+Inf"] == 2.0
    assert buckets["0.1"] <= buckets["1.0"] <= buckets["+Inf"]
    assert all(labels["WorkerId"] == actor_worker for labels, _ in find(text, "ray_num_requests_total"))
    assert "ray_num_requests_total" in scrape(port, "/")


def test_task_and_driver_metrics_are_separate_series_per_process(metrics_cluster):
    _, port = metrics_cluster
    items = Counter("items_done", description="Items done.", tag_keys=("stage",))

    @ray.remote
    def work(counter, n):
        counter.inc(n, tags={"stage": "map"})  # the counter arrives pickled, without default tags
        Gauge("task_gauge", description="Set in a task.").set(7.5)
        return n

    assert ray.get(work.remote(items, 3), timeout=60) == 3
    items.inc(2, tags={"stage": "map"})
    text = wait_for(port, "ray_task_gauge", 7.5)
    text = wait_for(port, "ray_items_done_total", 2.0, stage="map")
    text = wait_for(port, "ray_items_done_total", 3.0, stage="map")
    series = find(text, "ray_items_done_total", stage="map")
    assert sorted(v for _, v in series) == [2.0, 3.0]
    workers = {labels["WorkerId"] for labels, _ in series}
    assert len(workers) == 2 and any(w.startswith("driver") for w in workers), series


def test_histogram_buckets_are_cumulative_with_sum_and_count(metrics_cluster):
    _, port = metrics_cluster
    latency = Histogram("op_seconds", description="Op time.", boundaries=[1, 5, 10], tag_keys=("op",))
    for value in (0.5, 1, 3, 7, 20):
        latency.observe(value, tags={"op": "read"})
    text = wait_for(port, "ray_op_seconds_count", 5.0, op="read")
    buckets = {labels["le"]: v for labels, v in find(text, "ray_op_seconds_bucket", op="read")}
    assert buckets == {"1.0": 2.0, "5.0": 3.0, "10.0": 4.0, "+Inf": 5.0}
    assert find(text, "ray_op_seconds_sum", op="read")[0][1] == 31.5
    Gauge("driver_level").set(1)
    Gauge("driver_level").set(4)  # the same metric made twice: one series, the last value
    wait_for(port, "ray_driver_level", 4.0)


def test_ray_checks_names_tags_and_values_with_its_errors():
    with pytest.raises(ValueError, match="Empty name is not allowed"):
        Counter("")
    with pytest.warns(UserWarning, match="Invalid metric name: 1bad-name"):
        discarded = Counter("1bad-name")
    discarded.inc()  # records nothing
    with pytest.raises(TypeError, match="tag_keys should be a tuple type"):
        Counter("c_list_keys", tag_keys=["a"])
    with pytest.raises(TypeError, match="Tag keys must be str"):
        Counter("c_int_key", tag_keys=(1,))
    counter = Counter("c_checked", tag_keys=("a", "b"))
    with pytest.raises(ValueError, match=r"Missing value for tag key\(s\): b\."):
        counter.inc(tags={"a": "x"})
    with pytest.raises(ValueError, match="Missing value for tag key"):
        counter.inc()
    with pytest.raises(ValueError, match="Unrecognized tag key c."):
        counter.set_default_tags({"c": "x"})
    with pytest.raises(ValueError, match="Unrecognized tag key c."):
        counter.inc(tags={"a": "x", "b": "y", "c": "z"})
    with pytest.raises(TypeError, match="Tag values must be str"):
        counter.set_default_tags({"a": 1})
    assert counter.set_default_tags({"a": "x", "b": "y"}) is counter
    for bad in (0, -1):
        with pytest.raises(ValueError, match=f"value must be >0, got {bad}"):
            counter.inc(bad)
    with pytest.raises(TypeError, match="value must be int or float"):
        counter.inc("1")
    with pytest.raises(ValueError, match="boundaries argument should be provided"):
        Histogram("h_none")
    with pytest.raises(ValueError, match="Use positive values"):
        Histogram("h_zero", boundaries=[0, 1])
    with pytest.raises(ValueError, match="must be increasing"):
        Histogram("h_unsorted", boundaries=[2, 1])
    with pytest.raises(ValueError, match="already a counter"):
        Gauge("c_checked")
    Gauge("g_none").set(None)  # no-op, as in Ray
    assert Counter("c_info", description="d", tag_keys=("k",)).info == {
        "name": "c_info",
        "description": "d",
        "tag_keys": ("k",),
        "default_tags": {},
    }
    copy = pickle.loads(pickle.dumps(Histogram("h_pickled", "d", boundaries=[1.0], tag_keys=("k",))))
    assert copy.info["boundaries"] == [1.0] and copy.info["tag_keys"] == ("k",)


def test_registry_and_table_render_and_drop_silent_processes():
    registry = MetricRegistry()
    registry.declare("c", "counter", "a counter")
    registry.declare("h", "histogram", "a histogram", (1.0, 2.0))
    registry.inc("c", (("k", 'say "hi"\n'),), 2)
    registry.observe("h", (), 1.0)
    registry.observe("h", (), 3.0)
    rows = registry.take()
    assert len(rows) == 2 and registry.take() == () and len(registry.take(everything=True)) == 2
    table = MetricsTable("session_x", stale_after=10.0)
    table.update("w1", "10.0.0.1", rows, now=0.0)
    table.update("w2", "10.0.0.2", (("h", "gauge", "clash", (), 1.0),), now=5.0)
    text = table.render()
    assert 'ray_c_total{k="say \\"hi\\"\\n",Component="core_worker",NodeAddress="10.0.0.1"' in text
    assert (
        'ray_h_bucket{Component="core_worker",NodeAddress="10.0.0.1",SessionName="session_x",WorkerId="w1",le="1.0"} 1'
        in text
    )
    assert 'le="2.0"} 1' in text and 'le="+Inf"} 2' in text and "ray_h_sum" in text
    assert 'WorkerId="w2"' not in text  # "h" is a histogram first: a gauge "h" is left out
    assert table.drop_stale(now=12.0) == ["w1"]
    assert "ray_h_bucket" not in table.render() and "ray_h{" in table.render() and len(table) == 1


NO_EXPORTER = """
import os, sys, babyray as ray
from babyray.cluster import free_port
for arguments, refusal in (
    ({"_metrics_export_prot": 1}, "Unknown init"),
    ({"address": "127.0.0.1:1", "_metrics_export_port": free_port()}, "_metrics_export_port must not"),
):
    try:
        ray.init(**arguments)
    except ValueError as exc:
        assert refusal in str(exc), exc
    else:
        raise AssertionError(f"init({arguments}) was not refused")
info = ray.init(num_cpus=1, temp_dir=sys.argv[1], object_store_memory=64 * 1024 * 1024).address_info
print(info["session_dir"])
sys.stdout.flush()
input()
ray.shutdown()
"""


def test_nothing_listens_without_the_option_and_init_refuses_bad_arguments(tmp_path):
    driver = subprocess.Popen(
        [sys.executable, "-c", NO_EXPORTER, str(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
    )
    try:
        session_dir = driver.stdout.readline().strip()
        assert session_dir, "the driver did not start its cluster"
        ports = gcs_own_ports(session_dir)
        assert len(ports) == 1, f"the GCS listens on more than its Thespian port: {ports}"
        driver.communicate("\n", timeout=60)
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait(timeout=10)
    assert driver.returncode == 0
    assert_session_clean(session_dir)


def test_the_gcs_listens_on_the_metrics_port_only_when_asked(metrics_cluster):
    info, port = metrics_cluster
    ports = gcs_own_ports(info["session_dir"])
    assert port in ports and len(ports) == 2, ports


def test_cli_head_serves_metrics_and_a_member_refuses_the_option(tmp_path):
    env = cli_env(tmp_path)
    head_port, metrics_port = free_port(), free_port()
    member = cli(
        env, "start", "--address", f"127.0.0.1:{head_port}", "--metrics-export-port", str(metrics_port)
    )
    assert member.returncode == 2 and "--metrics-export-port is for the head" in member.stderr
    try:
        head = start(env, head_port, 1, "--metrics-export-port", str(metrics_port))
        assert f"http://127.0.0.1:{metrics_port}/metrics" in head.stdout
        assert scrape(metrics_port) == ""  # no metric recorded yet
    finally:
        stop = cli(env, "stop")
    assert stop.returncode == 0, stop.stdout + stop.stderr
    assert_gone(tmp_path)
    assert refused(metrics_port)
