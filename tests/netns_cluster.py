"""The simulated multi-host network of the tests: deploy/netns.py, loaded once, and babyray
clusters on it.

deploy/ is not a package, so ``netns`` is deploy/netns.py loaded by its path; every
multi-host test file uses this one module object, and ``needs_netns`` to skip where
network namespaces are unavailable (not root, or no iproute2).
"""

from __future__ import annotations

import contextlib
import importlib.util
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load_netns():
    spec = importlib.util.spec_from_file_location("babyray_deploy_netns", ROOT / "deploy" / "netns.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


netns = _load_netns()
_available, _why = netns.netns_available()
needs_netns = pytest.mark.skipif(not _available, reason=f"network namespaces unavailable: {_why}")

# A member node of a babyray cluster, with a custom resource named after its host (``on_m1``,
# ``on_m2``) so that tasks can be pinned to it.
MEMBER_CMD = (
    "{python} -m babyray.cli start --address {head} --node-ip {ip} --num-cpus {num_cpus} "
    "--resources '{\"on_{host}\": 1}'"
)


@contextlib.contextmanager
def babyray_cluster(
    tag: str, temp_dir: Path, members: int, node_timeout: float, object_store_memory: int
) -> Iterator:
    """A babyray head and ``members`` member nodes (2 CPUs each), each host in its own network
    namespace, with sessions under ``temp_dir``. On exit every namespace and every process of
    the cluster must be gone."""
    prefix = netns.random_prefix(tag)
    env = {
        "BABYRAY_TEMP_DIR": str(temp_dir),
        "BABYRAY_NODE_TIMEOUT": str(node_timeout),
        "BABYRAY_OBJECT_STORE_MEMORY": str(object_store_memory),
    }
    cluster = netns.NetnsCluster(prefix, members=members, member_cmd=MEMBER_CMD, env=env, num_cpus=2)
    cluster.up()
    try:
        yield cluster
    finally:
        cluster.down()
        assert not [ns for ns in netns.list_netns() if ns.startswith(prefix)], "namespaces left behind"
        left = subprocess.run(["pgrep", "-f", str(temp_dir)], capture_output=True, text=True).stdout.split()
        assert not left, f"processes left behind: {left}"
