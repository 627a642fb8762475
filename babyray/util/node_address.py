"""``get_node_ip_address()``: the IP address of the node this process runs on."""

from __future__ import annotations

import socket

from babyray.api import context


def get_node_ip_address(address: str = "8.8.8.8:53") -> str:
    """The IP of this process's node: the address the cluster knows the node by once
    ``init()`` ran (in drivers, tasks and actors alike), else the address this host would
    use to reach ``address`` (no packet is sent)."""
    runtime = context.runtime_or_none()
    if runtime is not None:
        known = getattr(runtime, "node_ip", None)
        if known:
            return known
        from babyray.api.public import nodes

        for node in nodes():
            if node["NodeID"] == runtime.node_id:
                runtime.node_ip = node["NodeManagerAddress"]
                return runtime.node_ip
    host, _, port = address.rpartition(":")
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect((host, int(port)))
            return probe.getsockname()[0]
    except OSError:
        return "127.0.0.1"
