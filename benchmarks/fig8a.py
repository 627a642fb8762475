"""Figure 8a of the Ray paper: mean task latency against input size, locality-aware vs
locality-unaware placement, on two nodes (head + one member, each in its own network
namespace; deploy/netns.py). The driver runs on the head's host, as in the paper and as in
Ray's run below (``cluster_utils`` puts its driver on the head node). Needs root and iproute2.

Locality-unaware (``--scheduling-policy queue`` for the whole cluster): a task runs where
it is submitted unless that node cannot take it, and the global scheduler places by queue
length only; locality-aware: a node passes up a task whose inputs are mostly elsewhere and
the global scheduler weighs queueing against fetching them.

Each task depends on one fresh object of the given size, made beforehand on a node chosen
at random (node affinity), so objects are spread over both nodes and a copy pulled by one
task never helps the next. Latency = submission of the dependent task to its result.
The same workload runs on Ray (ray.cluster_utils.Cluster) when ``ray`` is importable.
Also measured in the same run: a raw TCP stream over loopback and one between the two nodes'
namespaces (through the veth pairs and bridge), and the data plane's pull speed (from the
object stores' ``object_pulled`` log events).

    python benchmarks/fig8a.py [--tasks 1000] [--tasks-100mb 100] [--no-ray]

Writes benchmarks/results/fig8a.csv, fig8a.json and fig8a.png.
"""

from __future__ import annotations

import argparse
import glob
import importlib.util
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
SIZES = [100 * 1024, 1024 * 1024, 10 * 1024 * 1024, 100 * 1024 * 1024]
LABELS = {100 * 1024: "100KB", 1024 * 1024: "1MB", 10 * 1024 * 1024: "10MB", 100 * 1024 * 1024: "100MB"}

DRIVER = textwrap.dedent("""
    import json, random, sys, time
    import numpy as np
    import babyray as ray
    from babyray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    sizes, counts = json.loads(sys.argv[1]), json.loads(sys.argv[2])
    ray.init(address="auto")
    deadline = time.monotonic() + 60
    while sum(n["Alive"] for n in ray.nodes()) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    node_ids = sorted(n["NodeID"] for n in ray.nodes() if n["Alive"])

    @ray.remote
    def make(size):
        return np.ones(size, dtype=np.uint8)

    @ray.remote
    def consume(array):
        return array.nbytes

    # Warm every worker of both nodes (numpy imported, functions loaded) before measuring.
    warm = [NodeAffinitySchedulingStrategy(n) for n in node_ids for _ in range(4)]
    ray.get([consume.options(scheduling_strategy=s).remote(make.options(scheduling_strategy=s).remote(1000))
             for s in warm])
    rng = random.Random(1)
    out = {}
    for size, count in zip(sizes, counts):
        ray.get(consume.remote(make.remote(size)))  # warm up this size's code paths
        latencies = []
        for _ in range(count):
            home = rng.choice(node_ids)
            obj = make.options(scheduling_strategy=NodeAffinitySchedulingStrategy(home)).remote(size)
            ray.wait([obj])
            started = time.perf_counter()
            assert ray.get(consume.remote(obj)) == size
            latencies.append(time.perf_counter() - started)
            del obj
        out[str(size)] = latencies
    ray.shutdown()
    print("RESULT " + json.dumps(out))
""")


def _load_netns():
    spec = importlib.util.spec_from_file_location("babyray_deploy_netns_fig8a", ROOT / "deploy" / "netns.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


TCP_STREAM = textwrap.dedent("""
    import socket, sys, time
    role, host, port, total = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    if role == "sink":
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind((host, port))
        server.listen(1)
        print("LISTENING", flush=True)
        conn, _ = server.accept()
        buf = memoryview(bytearray(4 << 20))
        got = 0
        while got < total:
            n = conn.recv_into(buf)
            if not n:
                break
            got += n
    else:
        conn = socket.create_connection((host, port))
        chunk = bytearray(4 << 20)
        sent, started = 0, time.perf_counter()
        while sent < total:
            conn.sendall(chunk)
            sent += len(chunk)
        conn.close()
        print("GBPS", total / (time.perf_counter() - started) / 1e9)
""")


def tcp_stream_gbps(
    host: str, sink_prefix: list[str] = (), source_prefix: list[str] = (), total: int = 1 << 30, runs: int = 3
) -> float:
    """One raw TCP stream of 4 MB sends from a source process to a sink process listening on
    ``host`` (each command run behind its prefix, e.g. ``ip netns exec NS``); median of ``runs``.
    The yardstick of the data plane, which moves objects between two processes the same way."""
    speeds = []
    for _ in range(runs):
        port = str(_free_port())
        sink = subprocess.Popen(
            [*sink_prefix, sys.executable, "-c", TCP_STREAM, "sink", host, port, str(total)],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert sink.stdout.readline().startswith("LISTENING")
            source = subprocess.run(
                [*source_prefix, sys.executable, "-c", TCP_STREAM, "source", host, port, str(total)],
                capture_output=True,
                text=True,
                timeout=120,
                check=True,
            )
            speeds.append(float(source.stdout.split("GBPS", 1)[1]))
        finally:
            sink.wait(timeout=60)
    return statistics.median(speeds)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_babyray(netns, policy: str, counts: list[int], temp_dir: str) -> tuple[dict, list[float], float]:
    """Latencies per size, the data plane's pull speeds (GB/s, objects of 10 MB or more), and a
    raw TCP stream's speed between the two nodes' namespaces."""
    head_cmd = (
        "{python} -m babyray.cli start --head --node-ip {ip} --port {port} --num-cpus {num_cpus} "
        f"--scheduling-policy {policy}"
    )
    env = {"BABYRAY_TEMP_DIR": temp_dir, "BABYRAY_OBJECT_STORE_MEMORY": str(1 << 30)}
    with netns.NetnsCluster(
        netns.random_prefix("f8"), members=1, head_cmd=head_cmd, env=env, num_cpus=2
    ) as c:
        script = Path(temp_dir) / "fig8a_driver.py"
        script.write_text(DRIVER)
        result = c.run(
            [sys.executable, str(script), json.dumps(SIZES), json.dumps(counts)],
            host="head",
            capture_output=True,
            text=True,
            timeout=1800,
        )
        if result.returncode != 0:
            raise RuntimeError(f"driver failed ({policy}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
        line = [x for x in result.stdout.splitlines() if x.startswith("RESULT ")][-1]
        latencies = json.loads(line[len("RESULT ") :])
        network = tcp_stream_gbps(c.host_ip("m1"), c.argv_in("m1", []), c.argv_in("head", []))
    pulls = []
    for path in glob.glob(os.path.join(temp_dir, "session_*", "logs", "object_store-*.jsonl")):
        with open(path) as f:
            for raw in f:
                if '"object_pulled"' in raw:
                    event = json.loads(raw)
                    if event.get("size", 0) >= 10 << 20:
                        pulls.append(event["gbps"])
    return latencies, pulls, network


def run_ray(counts: list[int]) -> dict:
    import random

    import numpy as np
    import ray
    from ray.cluster_utils import Cluster
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "object_store_memory": 1 << 30})
    cluster.add_node(num_cpus=2, object_store_memory=1 << 30)
    try:
        ray.init(address=cluster.address, logging_level="ERROR")
        cluster.wait_for_nodes()
        node_ids = sorted(n["NodeID"] for n in ray.nodes() if n["Alive"])

        @ray.remote
        def make(size):
            return np.ones(size, dtype=np.uint8)

        @ray.remote
        def consume(array):
            return array.nbytes

        warm = [NodeAffinitySchedulingStrategy(n, soft=False) for n in node_ids for _ in range(4)]
        ray.get(
            [
                consume.options(scheduling_strategy=s).remote(
                    make.options(scheduling_strategy=s).remote(1000)
                )
                for s in warm
            ]
        )
        rng = random.Random(1)
        out = {}
        for size, count in zip(SIZES, counts, strict=True):
            ray.get(consume.remote(make.remote(size)))
            latencies = []
            for _ in range(count):
                obj = make.options(
                    scheduling_strategy=NodeAffinitySchedulingStrategy(rng.choice(node_ids), soft=False)
                ).remote(size)
                ray.wait([obj])
                started = time.perf_counter()
                ray.get(consume.remote(obj))
                latencies.append(time.perf_counter() - started)
                del obj
            out[str(size)] = latencies
        return out
    finally:
        ray.shutdown()
        cluster.shutdown()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--tasks", type=int, default=1000, help="tasks per size up to 10 MB (as in the paper)"
    )
    parser.add_argument("--tasks-100mb", type=int, default=100, help="tasks at 100 MB")
    parser.add_argument("--no-ray", action="store_true")
    args = parser.parse_args()
    counts = [args.tasks, args.tasks, args.tasks, args.tasks_100mb]
    netns = _load_netns()
    ok, why = netns.netns_available()
    if not ok:
        print(f"network namespaces unavailable ({why}): cannot run fig8a")
        return 1
    RESULTS.mkdir(parents=True, exist_ok=True)
    loopback = tcp_stream_gbps("127.0.0.1")
    print(f"loopback TCP stream (same run): {loopback:.2f} GB/s")
    series: dict[str, dict] = {}
    pulls: list[float] = []
    networks: list[float] = []
    for policy, name in (("locality", "babyray locality-aware"), ("queue", "babyray locality-unaware")):
        with tempfile.TemporaryDirectory(prefix=f"fig8a_{policy}_") as temp_dir:
            started = time.monotonic()
            latencies, policy_pulls, network = run_babyray(netns, policy, counts, temp_dir)
            pulls += policy_pulls
            networks.append(network)
            series[name] = latencies
            print(f"{name}: done in {time.monotonic() - started:.1f}s")
    ray_note = ""
    if not args.no_ray:
        try:
            started = time.monotonic()
            series["ray (default, locality-aware)"] = run_ray(counts)
            print(f"ray: done in {time.monotonic() - started:.1f}s")
        except Exception as exc:  # ray missing or its local cluster does not start here
            ray_note = f"Ray not run: {type(exc).__name__}: {exc}"
            print(ray_note)
    rows = []
    for name, latencies in series.items():
        for size in SIZES:
            values = latencies[str(size)]
            rows.append(
                {
                    "system": name,
                    "size_bytes": size,
                    "size": LABELS[size],
                    "tasks": len(values),
                    "mean_ms": 1000 * statistics.mean(values),
                    "median_ms": 1000 * statistics.median(values),
                    "p90_ms": 1000 * sorted(values)[int(0.9 * (len(values) - 1))],
                }
            )
    with open(RESULTS / "fig8a.csv", "w") as f:
        f.write("system,size,size_bytes,tasks,mean_ms,median_ms,p90_ms\n")
        for r in rows:
            f.write(
                f"{r['system']},{r['size']},{r['size_bytes']},{r['tasks']},{r['mean_ms']:.3f},"
                f"{r['median_ms']:.3f},{r['p90_ms']:.3f}\n"
            )
    pull_median = statistics.median(pulls) if pulls else 0.0
    network = statistics.median(networks)
    summary = {
        "loopback_tcp_gbps": loopback,
        "pull_gbps_median_10mb_plus": pull_median,
        "pull_fraction_of_loopback": pull_median / loopback if loopback else 0.0,
        "node_to_node_tcp_gbps": network,
        "pull_fraction_of_node_to_node_tcp": pull_median / network,
        "rows": rows,
        "ray_note": ray_note,
        "counts": dict(zip(map(LABELS.get, SIZES), counts, strict=True)),
    }
    (RESULTS / "fig8a.json").write_text(json.dumps(summary, indent=2))
    print(f"\n{'system':<32} " + " ".join(f"{LABELS[s]:>9}" for s in SIZES) + "   100MB/100KB")
    for name in series:
        means = [r["mean_ms"] for r in rows if r["system"] == name]
        print(f"{name:<32} " + " ".join(f"{v:8.2f}ms" for v in means) + f"   {means[-1] / means[0]:8.1f}x")
    print(f"tasks per size: {summary['counts']} (the paper uses 1000; fewer at 100 MB to bound the run time)")
    print(
        f"data plane pulls >= 10 MB: median {pull_median:.2f} GB/s = {summary['pull_fraction_of_loopback']:.2f} "
        f"of the loopback TCP stream, {summary['pull_fraction_of_node_to_node_tcp']:.2f} of a raw TCP stream "
        f"between the two nodes' namespaces ({network:.2f} GB/s; {len(pulls)} pulls)"
    )
    if "ray (default, locality-aware)" in series:
        ray_means = [r["mean_ms"] for r in rows if r["system"].startswith("ray")]
        ours = [r["mean_ms"] for r in rows if r["system"] == "babyray locality-aware"]
        print(
            "babyray locality-aware / ray: "
            + " ".join(f"{LABELS[s]} {a / b:.2f}x" for s, a, b in zip(SIZES, ours, ray_means, strict=False))
        )
    _plot(rows, list(series))
    print(f"wrote {RESULTS / 'fig8a.csv'}, {RESULTS / 'fig8a.json'}, {RESULTS / 'fig8a.png'}")
    return 0


def _plot(rows: list[dict], names: list[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, marker in zip(names, "osd^", strict=False):
        points = [(r["size_bytes"], r["mean_ms"]) for r in rows if r["system"] == name]
        ax.plot([p[0] for p in points], [p[1] for p in points], marker=marker, label=name)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(SIZES)
    ax.set_xticklabels([LABELS[s] for s in SIZES])
    ax.set_xlabel("object size")
    ax.set_ylabel("mean task latency (ms)")
    ax.set_title("Figure 8a: locality-aware placement (2 nodes)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(RESULTS / "fig8a.png", dpi=120)


if __name__ == "__main__":
    sys.exit(main())
