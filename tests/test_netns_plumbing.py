"""Plumbing of the simulated multi-host cluster (deploy/netns.py and
deploy/local-cluster), with stand-in TCP echo servers instead of babyray.

Needs root and iproute2; skipped otherwise.  Every cluster uses a random
prefix, so parallel runs do not collide, and is torn down by the test.
"""

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from netns_cluster import needs_netns, netns

ROOT = Path(__file__).resolve().parents[1]
CLI = ROOT / "deploy" / "local-cluster"

pytestmark = needs_netns

ECHO_SERVER = r"""
import socketserver, sys
ip, port, name = sys.argv[1], int(sys.argv[2]), sys.argv[3]
class H(socketserver.StreamRequestHandler):
    def handle(self):
        for line in self.rfile:
            self.wfile.write(name.encode() + b":" + line)
            self.wfile.flush()
class S(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
srv = S((ip, port), H)
print("listening", ip, port, flush=True)
srv.serve_forever()
"""

# Run in the driver namespace: talk to each ip:port given, print the replies.
ECHO_CLIENT = r"""
import socket, sys
port = int(sys.argv[1])
for ip in sys.argv[2:]:
    try:
        s = socket.create_connection((ip, port), timeout=3)
        s.sendall(b"ping\n")
        print(ip, s.makefile().readline().strip())
        s.close()
    except OSError as e:
        print(ip, "ERROR", type(e).__name__)
"""


@pytest.fixture(scope="module")
def echo_cmd(tmp_path_factory):
    path = tmp_path_factory.mktemp("netns") / "echo_server.py"
    path.write_text(ECHO_SERVER)
    return f"{{python}} {path} {{ip}} {{port}} {{host}}"


def make_cluster(echo_cmd, members=2, **kw):
    return netns.NetnsCluster(
        netns.random_prefix("t"), members, head_cmd=echo_cmd, member_cmd=echo_cmd, head_timeout=30, **kw
    )


@pytest.fixture(scope="module")
def cluster(echo_cmd):
    with make_cluster(echo_cmd) as c:
        yield c


def ping_from_driver(c, hosts):
    ips = [c.host_ip(h) for h in hosts]
    r = c.run(
        [sys.executable, "-c", ECHO_CLIENT, str(c.port), *ips], capture_output=True, text=True, timeout=30
    )
    assert r.returncode == 0, r.stderr
    return dict(line.split(" ", 1) for line in r.stdout.splitlines())


def root_links():
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True, check=True).stdout
    return [ln.split(":", 2)[1].strip().split("@")[0] for ln in out.splitlines()]


def ns_ipv4(ns):
    out = subprocess.run(
        ["ip", "-n", ns, "-4", "-o", "addr", "show", "dev", "eth0"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return re.findall(r"inet (\S+)", out)


def assert_all_gone(prefix, pids=()):
    assert not [ns for ns in netns.list_netns() if ns.startswith(prefix + "-")]
    assert not [ln for ln in root_links() if ln.startswith(prefix)]
    assert not netns.state_dir_for(prefix).exists()
    alive = [p for p in pids if netns.pid_alive(p)]
    assert not alive, f"processes left: {alive}"


# --------------------------------------------------------------------------


def test_layout_and_head_address(cluster):
    p = cluster.prefix
    assert len(p) <= netns.MAX_PREFIX_LEN
    assert cluster.head_address == "192.0.2.1:1900"
    assert cluster.hosts == ["head", "m1", "m2", "driver"]
    assert [cluster.host_ip(h) for h in cluster.hosts] == [
        "192.0.2.1",
        "192.0.2.11",
        "192.0.2.12",
        "192.0.2.100",
    ]
    assert set(netns.list_netns()) >= {f"{p}-br", f"{p}-head", f"{p}-m1", f"{p}-m2", f"{p}-driver"}


def test_each_host_answers_from_driver(cluster):
    replies = ping_from_driver(cluster, ["head", "m1", "m2"])
    assert replies == {"192.0.2.1": "head:ping", "192.0.2.11": "m1:ping", "192.0.2.12": "m2:ping"}


def test_hosts_have_distinct_addresses(cluster):
    addrs = {h: ns_ipv4(cluster.ns(h)) for h in cluster.hosts}
    for h, a in addrs.items():
        assert a == [f"{cluster.host_ip(h)}/24"], (h, a)
    flat = [a[0] for a in addrs.values()]
    assert len(set(flat)) == len(flat)
    assert all(a.startswith("192.0.2.") for a in flat)


def test_no_default_route_anywhere(cluster):
    for ns in [cluster.ns(h) for h in cluster.hosts] + [cluster.bridge_ns]:
        default = subprocess.run(
            ["ip", "-n", ns, "route", "show", "default"], capture_output=True, text=True, check=True
        ).stdout
        assert default.strip() == "", ns
        for fam in ("-4", "-6"):
            routes = subprocess.run(
                ["ip", "-n", ns, fam, "route", "show"], capture_output=True, text=True, check=True
            ).stdout
            assert "default" not in routes, (ns, routes)
        v4 = subprocess.run(
            ["ip", "-n", ns, "-4", "route", "show"], capture_output=True, text=True, check=True
        ).stdout
        for line in v4.splitlines():
            assert line.startswith("192.0.2.0/24 "), (ns, line)


def test_loopback_up_everywhere_and_bridge_not_in_root(cluster):
    for ns in [cluster.ns(h) for h in cluster.hosts] + [cluster.bridge_ns]:
        out = subprocess.run(
            ["ip", "-n", ns, "-o", "link", "show", "lo"], capture_output=True, text=True, check=True
        ).stdout
        assert "UP" in out.split(">")[0], (ns, out)
    assert not [ln for ln in root_links() if ln.startswith(cluster.prefix)]
    br = subprocess.run(
        ["ip", "-n", cluster.bridge_ns, "-o", "link", "show", "type", "bridge"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert f"{cluster.prefix}-br" in br


def test_second_up_with_same_prefix_touches_nothing(cluster):
    with pytest.raises(netns.ClusterExists):
        netns.NetnsCluster(cluster.prefix, 1, head_cmd="true", member_cmd="").up()
    assert cluster.state_file.exists()
    assert ping_from_driver(cluster, ["head"]) == {"192.0.2.1": "head:ping"}


def test_state_file_and_process_groups(cluster):
    st = json.loads(cluster.state_file.read_text())
    assert st["status"] == "up"
    assert st["head_address"] == "192.0.2.1:1900"
    assert set(st["namespaces"]) == {cluster.ns(h) for h in cluster.hosts} | {cluster.bridge_ns}
    assert {link["host"] for link in st["links"]} == set(cluster.hosts)
    assert {h: i["ip"] for h, i in st["hosts"].items()} == {h: cluster.host_ip(h) for h in cluster.hosts}
    procs = {p["host"]: p for p in st["processes"]}
    assert set(procs) == {"head", "m1", "m2"}
    for host, p in procs.items():
        pid = p["pid"]
        assert netns.pid_alive(pid, p["starttime"])
        assert os.getpgid(pid) == pid and os.getsid(pid) == pid  # own session
        assert pid in cluster.pids(host)  # in its netns
        assert Path(p["log"]).read_text().count("listening") >= 1


def test_run_passes_env_and_exit_code(cluster):
    r = cluster.run(
        [
            sys.executable,
            "-c",
            "import os; print(os.environ['BABYRAY_ADDRESS'], os.environ['THESPIAN_BASE_IPADDR'])",
        ],
        capture_output=True,
        text=True,
    )
    assert r.stdout.split() == ["192.0.2.1:1900", "192.0.2.100"]
    assert cluster.run("exit 7").returncode == 7


def test_in_netns_thread_switch(cluster):
    before = os.stat("/proc/thread-self/ns/net").st_ino
    driver = os.stat(f"/var/run/netns/{cluster.ns('driver')}").st_ino
    assert before != driver
    with netns.in_netns(cluster.ns("driver")):
        assert os.stat("/proc/thread-self/ns/net").st_ino == driver
        with socket.create_connection(("192.0.2.11", 1900), timeout=3) as s:
            s.sendall(b"x\n")
            assert s.makefile().readline().strip() == "m1:x"
    assert os.stat("/proc/thread-self/ns/net").st_ino == before


def test_kill_host_restart_and_down(echo_cmd, tmp_path):
    # The head also leaves a setsid'd grandchild behind, like a daemonizing
    # admin: it escapes the recorded process group but not the namespace.
    marker = tmp_path / "grandchild.pid"
    head_cmd = (
        f"sh -c 'setsid sleep 1000 & echo $! > {marker}; "
        f'exec {sys.executable} "$0" "$@"\' ' + echo_cmd.replace("{python} ", "")
    )
    c = netns.NetnsCluster(
        netns.random_prefix("t"), 2, head_cmd=head_cmd, member_cmd=echo_cmd, head_timeout=30
    )
    c.up()
    try:
        grandchild = int(marker.read_text())
        assert grandchild in c.pids("head")
        m1_pids = c.pids("m1")
        assert m1_pids
        killed = c.kill_host("m1")
        assert sorted(killed) == sorted(m1_pids)
        assert c.pids("m1") == []
        assert not any(netns.pid_alive(p) for p in m1_pids)
        replies = ping_from_driver(c, ["head", "m1", "m2"])
        assert replies["192.0.2.11"] == "ERROR ConnectionRefusedError"
        assert replies["192.0.2.1"] == "head:ping" and replies["192.0.2.12"] == "m2:ping"
        # start it again
        c.start_host("m1")
        c.wait_tcp(c.host_ip("m1"), c.port, timeout=20)
        assert ping_from_driver(c, ["m1"]) == {"192.0.2.11": "m1:ping"}
        pids = [p["pid"] for p in c.state["processes"]] + [grandchild]
        pids += [p for h in c.hosts for p in c.pids(h)]
    finally:
        problems = c.down()
    assert problems == []
    assert_all_gone(c.prefix, pids)
    assert c.down() == []  # idempotent
    assert_all_gone(c.prefix, pids)


def test_failed_up_tears_itself_down(echo_cmd):
    c = netns.NetnsCluster(
        netns.random_prefix("t"),
        2,
        head_cmd="sh -c 'echo head broke; exit 3'",
        member_cmd=echo_cmd,
        head_timeout=20,
    )
    with pytest.raises(netns.NetnsError, match="head exited with 3") as ei:
        c.up()
    assert "head broke" in str(ei.value)
    assert_all_gone(c.prefix)


def test_down_after_halfway_up(echo_cmd):
    # a member that dies at start; keep_on_failure leaves the wreck in place
    c = netns.NetnsCluster(
        netns.random_prefix("t"),
        2,
        head_cmd=echo_cmd,
        member_cmd="sh -c 'exit 5'",
        head_timeout=20,
        keep_on_failure=True,
    )
    with pytest.raises(netns.NetnsError, match="exited with 5"):
        c.up()
    st = json.loads(c.state_file.read_text())
    assert st["status"] == "failed"
    head_pid = [p["pid"] for p in st["processes"] if p["host"] == "head"][0]
    assert netns.pid_alive(head_pid)
    # tear down from another process, knowing only the prefix
    r = subprocess.run(
        [sys.executable, str(CLI), "down", "--name", c.prefix], capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0, r.stderr
    c._reap()
    assert_all_gone(c.prefix, [head_pid])
    # and with no state file at all, only namespaces
    prefix = netns.random_prefix("t")
    for suffix in ("br", "head", "m1"):
        subprocess.run(["ip", "netns", "add", f"{prefix}-{suffix}"], check=True)
    assert netns.down_prefix(prefix) == []
    assert_all_gone(prefix)


def test_bad_prefixes_rejected():
    for bad in ("toolongprefix", "9abc", "a_b", "abc-", ""):
        with pytest.raises(netns.NetnsError):
            netns.check_prefix(bad)
    for _ in range(20):
        netns.check_prefix(netns.random_prefix("t"))


def test_expand_cmd_placeholders():
    got = netns.expand_cmd(
        "{python} -c 'print({1: 2})' {ip} {port} --x={head}",
        {"python": "py", "ip": "192.0.2.11", "port": 1900, "head": "192.0.2.1:1900"},
    )
    assert got == ["py", "-c", "print({1: 2})", "192.0.2.11", "1900", "--x=192.0.2.1:1900"]
    c = netns.NetnsCluster("tdefault", 1)
    assert c.cmd_for("head") == [
        sys.executable,
        "-m",
        "babyray.cli",
        "start",
        "--head",
        "--node-ip",
        "192.0.2.1",
        "--port",
        "1900",
        "--num-cpus",
        "2",
    ]
    assert c.cmd_for("m1") == [
        sys.executable,
        "-m",
        "babyray.cli",
        "start",
        "--address",
        "192.0.2.1:1900",
        "--node-ip",
        "192.0.2.11",
        "--num-cpus",
        "2",
    ]


def test_cli_up_run_kill_down(echo_cmd):
    prefix = netns.random_prefix("c")
    cli = [sys.executable, str(CLI)]
    try:
        r = subprocess.run(
            cli
            + ["up", "--members", "2", "--name", prefix, "--head-cmd", echo_cmd, "--member-cmd", echo_cmd],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip().splitlines()[-1] == "192.0.2.1:1900"
        r = subprocess.run(
            cli
            + [
                "run",
                "--name",
                prefix,
                "--",
                sys.executable,
                "-c",
                ECHO_CLIENT,
                "1900",
                "192.0.2.1",
                "192.0.2.11",
                "192.0.2.12",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert r.returncode == 0, r.stderr
        assert "192.0.2.12 m2:ping" in r.stdout
        r = subprocess.run(cli + ["run", "--name", prefix, "--", "sh", "-c", "exit 9"])
        assert r.returncode == 9
        r = subprocess.run(
            cli + ["exec", "m2", "--name", prefix, "--", "ip", "-4", "-o", "addr", "show", "dev", "eth0"],
            capture_output=True,
            text=True,
        )
        assert "192.0.2.12/24" in r.stdout
        pids = netns.netns_pids(f"{prefix}-m1")
        assert pids
        r = subprocess.run(cli + ["kill-member", "1", "--name", prefix], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        deadline = time.monotonic() + 5
        while any(netns.pid_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(netns.pid_alive(p) for p in pids)
        assert netns.netns_pids(f"{prefix}-m1") == []
        assert netns.netns_pids(f"{prefix}-m2")
        st = netns.load_state(prefix)
        all_pids = [p["pid"] for p in st["processes"]]
    finally:
        r = subprocess.run(cli + ["down", "--name", prefix], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert_all_gone(prefix, all_pids)
    r = subprocess.run(cli + ["down", "--name", prefix], capture_output=True, text=True)
    assert r.returncode == 0
