"""Simulated multi-host babyray clusters in Linux network namespaces.

Stdlib only; needs root and iproute2 (``ip``).  Used by ``deploy/local-cluster``
and by pytest fixtures.  Layout for a cluster with prefix ``P``::

    namespace P-br      bridge P-br; veth ends P-head, P-m1.., P-driver; lo up
    namespace P-head    eth0 192.0.2.1/24    (the head)
    namespace P-m1..mN  eth0 192.0.2.11../24 (members)
    namespace P-driver  eth0 192.0.2.100/24  (drivers: ``run``)

Every interface is created directly inside its namespace, so nothing is ever
added to the root namespace, and there is no default route anywhere: traffic
cannot leave the bridge.  State (namespaces, links, pids, addresses, command
templates) lives in ``/tmp/babyray-netns/P/state.json`` with the process logs
(``<host>.log``) beside it.

Importing: deploy/ is not a package.  From a test::

    import importlib.util, pathlib
    _p = pathlib.Path(__file__).resolve().parents[1] / "deploy" / "netns.py"
    _spec = importlib.util.spec_from_file_location("babyray_deploy_netns", _p)
    netns = importlib.util.module_from_spec(_spec)
    sys.modules[_spec.name] = netns
    _spec.loader.exec_module(netns)

or put ``deploy/`` on ``sys.path`` and ``import netns``.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterable, Mapping, Sequence

__all__ = [
    "NetnsCluster",
    "NetnsError",
    "ClusterExists",
    "netns_available",
    "random_prefix",
    "down_prefix",
    "load_state",
    "list_clusters",
    "in_netns",
    "state_dir_for",
    "host_ip_for",
    "HEAD_IP",
    "DRIVER_IP",
    "DEFAULT_PORT",
    "DEFAULT_HEAD_CMD",
    "DEFAULT_MEMBER_CMD",
    "STATE_ROOT",
    "MAX_PREFIX_LEN",
]

REPO_ROOT = Path(__file__).resolve().parent.parent
STATE_ROOT = Path(os.environ.get("BABYRAY_NETNS_STATE_ROOT", "/tmp/babyray-netns"))

SUBNET = "192.0.2"  # TEST-NET-1 (RFC 5737): never routed anywhere
PREFIX_LEN = 24
HEAD_IP = f"{SUBNET}.1"
DRIVER_IP = f"{SUBNET}.100"
FIRST_MEMBER_OCTET = 11
MAX_MEMBERS = 100 - FIRST_MEMBER_OCTET  # members .11 .. .99 (89)
DEFAULT_PORT = 1900
DEFAULT_NUM_CPUS = 2
HOST_IFNAME = "eth0"  # the interface name inside every host namespace

# Longest bridge-side name is "<prefix>-driver": 8 + 7 = 15 = IFNAMSIZ - 1.
MAX_PREFIX_LEN = 8
_PREFIX_RE = re.compile(r"^[a-z][a-z0-9-]{0,7}$")
_HOST_RE = re.compile(r"^(head|driver|m([1-9][0-9]*))$")

# Default commands (templates).  They run the babyray CLI as
# ``sys.executable -m babyray.cli`` with the repo root on PYTHONPATH.
DEFAULT_HEAD_CMD = "{python} -m babyray.cli start --head --node-ip {ip} --port {port} --num-cpus {num_cpus}"
DEFAULT_MEMBER_CMD = "{python} -m babyray.cli start --address {head} --node-ip {ip} --num-cpus {num_cpus}"
# Placeholders substituted in command templates; any other {...} is left alone.
PLACEHOLDERS = ("ip", "port", "head", "head_ip", "num_cpus", "host", "python", "prefix", "state_dir")


class NetnsError(RuntimeError):
    pass


class ClusterExists(NetnsError):
    """up() found namespaces of the same prefix; nothing was touched."""


# --------------------------------------------------------------------------
# small helpers


def random_prefix(base: str = "t") -> str:
    """A short prefix unique per run, e.g. ``t3f9a1c``."""
    base = base[: MAX_PREFIX_LEN - 4] or "t"
    return check_prefix(base + secrets.token_hex(4)[: MAX_PREFIX_LEN - len(base)])


def check_prefix(prefix: str) -> str:
    if not _PREFIX_RE.match(prefix) or prefix.endswith("-"):
        raise NetnsError(
            f"bad prefix {prefix!r}: 1-{MAX_PREFIX_LEN} chars of [a-z0-9-], "
            "starting with a letter, not ending with '-' (interface names "
            "must stay within 15 characters)"
        )
    return prefix


def host_ip_for(host: str) -> str:
    if host == "head":
        return HEAD_IP
    if host == "driver":
        return DRIVER_IP
    m = _HOST_RE.match(host)
    if not m or not m.group(2):
        raise NetnsError(f"unknown host {host!r} (head, m1.., driver)")
    k = int(m.group(2))
    if k > MAX_MEMBERS:
        raise NetnsError(f"member index {k} > {MAX_MEMBERS}")
    return f"{SUBNET}.{FIRST_MEMBER_OCTET - 1 + k}"


def normalize_host(host) -> str:
    """Accept 'head', 'driver', 'm3', '3' or 3."""
    if isinstance(host, int) or (isinstance(host, str) and host.isdigit()):
        return f"m{int(host)}"
    if isinstance(host, str) and _HOST_RE.match(host):
        return host
    raise NetnsError(f"unknown host {host!r} (head, m1.., driver)")


def state_dir_for(prefix: str) -> Path:
    return STATE_ROOT / prefix


def load_state(prefix: str) -> dict | None:
    try:
        with open(state_dir_for(prefix) / "state.json") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run(["ip", *args], stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if check and r.returncode != 0:
        raise NetnsError(f"ip {' '.join(args)} failed ({r.returncode}): {r.stderr.strip()}")
    return r


def list_netns() -> list[str]:
    r = _ip("netns", "list", check=False)
    # lines look like "name" or "name (id: 3)"
    return [ln.split()[0] for ln in r.stdout.splitlines() if ln.strip()]


def netns_pids(ns: str) -> list[int]:
    r = _ip("netns", "pids", ns, check=False)
    if r.returncode != 0:
        return []
    return [int(x) for x in r.stdout.split() if x.isdigit()]


def _proc_starttime(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rfind(")") + 2 :].split()
    if fields and fields[0] == "Z":
        return None  # zombie: already dead
    try:
        return int(fields[19])  # field 22 overall
    except (IndexError, ValueError):
        return None


def pid_alive(pid: int, starttime: int | None = None) -> bool:
    st = _proc_starttime(pid)
    if st is None:
        return False
    return starttime is None or st == starttime


def _kill(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def _killpg(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def expand_cmd(template: str | Sequence[str], values: Mapping[str, object]) -> list[str]:
    """Split a template (shell words) and substitute ``{ip}``-style
    placeholders in each word.  Unknown ``{...}`` are left as they are."""
    words = shlex.split(template) if isinstance(template, str) else list(template)
    pat = re.compile(r"\{(" + "|".join(map(re.escape, values)) + r")\}")
    return [pat.sub(lambda m: str(values[m.group(1)]), str(w)) for w in words]


def netns_available() -> tuple[bool, str]:
    """(True, '') if this process can create network namespaces, else
    (False, reason).  Creates and deletes a throw-away namespace."""
    if os.geteuid() != 0:
        return False, "needs root"
    if not shutil.which("ip"):
        return False, "iproute2 'ip' not found"
    probe = "brprobe-" + secrets.token_hex(4)
    r = _ip("netns", "add", probe, check=False)
    if r.returncode != 0:
        return False, f"ip netns add failed: {r.stderr.strip()}"
    try:
        r = _ip("-n", probe, "link", "add", "p0", "type", "veth", "peer", "name", "p1", check=False)
        if r.returncode != 0:
            return False, f"veth not available: {r.stderr.strip()}"
        r = _ip("-n", probe, "link", "add", "b0", "type", "bridge", check=False)
        if r.returncode != 0:
            return False, f"bridge not available: {r.stderr.strip()}"
    finally:
        _ip("netns", "del", probe, check=False)
    return True, ""


_CLONE_NEWNET = 0x40000000


@contextlib.contextmanager
def in_netns(ns: str):
    """Move the *calling thread* into network namespace ``ns`` (full name,
    e.g. ``P-driver``) for the duration of the block; sockets created inside
    stay in it.  Other threads are unaffected; children forked from this
    thread inherit it."""
    libc = ctypes.CDLL(None, use_errno=True)
    orig = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        fd = os.open(f"/var/run/netns/{ns}", os.O_RDONLY)
        try:
            if libc.setns(fd, _CLONE_NEWNET) != 0:
                e = ctypes.get_errno()
                raise OSError(e, f"setns({ns}): {os.strerror(e)}")
        finally:
            os.close(fd)
        try:
            yield
        finally:
            if libc.setns(orig, _CLONE_NEWNET) != 0:
                e = ctypes.get_errno()
                raise OSError(e, f"setns(back): {os.strerror(e)}")
    finally:
        os.close(orig)


_PROBE = r"""
import socket, sys, time
ip, port, deadline = sys.argv[1], int(sys.argv[2]), time.time() + float(sys.argv[3])
while True:
    try:
        socket.create_connection((ip, port), timeout=1).close()
        sys.exit(0)
    except OSError:
        if time.time() > deadline:
            sys.exit(1)
        time.sleep(0.1)
"""


# --------------------------------------------------------------------------
# teardown by prefix (works from a state file, from `ip netns list`, or both)


def list_clusters() -> list[str]:
    """Prefixes of clusters on this machine (bridge namespace or state dir)."""
    found = {ns[:-3] for ns in list_netns() if ns.endswith("-br") and _PREFIX_RE.match(ns[:-3])}
    if STATE_ROOT.is_dir():
        found |= {d.name for d in STATE_ROOT.iterdir() if (d / "state.json").exists()}
    return sorted(found)


def _prefix_namespaces(prefix: str) -> list[str]:
    pat = re.compile(rf"^{re.escape(prefix)}-(br|head|driver|m[0-9]+)$")
    return [ns for ns in list_netns() if pat.match(ns)]


def _terminate(
    namespaces: Iterable[str], groups: Iterable[dict], grace: float, reap=lambda: None
) -> list[int]:
    """SIGTERM then SIGKILL every process in ``namespaces`` and every
    recorded process group whose leader is still the recorded process.
    Returns pids still alive afterwards (should be empty)."""
    namespaces = list(namespaces)
    groups = [g for g in groups if pid_alive(g["pid"], g.get("starttime"))]

    def alive() -> set[int]:
        reap()
        pids = {p for ns in namespaces for p in netns_pids(ns)}
        pids |= {g["pid"] for g in groups if pid_alive(g["pid"], g.get("starttime"))}
        pids.discard(os.getpid())
        return {p for p in pids if pid_alive(p)}

    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        pids = alive()
        if not pids:
            return []
        for g in groups:
            if g.get("pgid") and pid_alive(g["pid"], g.get("starttime")):
                _killpg(g["pgid"], sig)
        for p in pids:
            _kill(p, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not alive():
                return []
            time.sleep(0.05)
    return sorted(alive())


def down_prefix(prefix: str, grace: float = 3.0, reap=lambda: None, quiet: bool = True) -> list[str]:
    """Tear down everything of cluster ``prefix``.  Idempotent.  Returns a
    list of problems (empty if everything is gone)."""
    check_prefix(prefix)
    state = load_state(prefix) or {}
    nss = list(dict.fromkeys(list(state.get("namespaces", [])) + _prefix_namespaces(prefix)))
    existing = set(list_netns())
    nss = [ns for ns in nss if ns in existing]
    bridge_ns = f"{prefix}-br"
    # hosts first, bridge last
    nss.sort(key=lambda ns: ns == bridge_ns)
    problems: list[str] = []
    left = _terminate(nss, state.get("processes", []), grace, reap)
    if left:
        problems.append(f"processes still alive: {left}")
    # delete links explicitly (deleting one veth end deletes the pair)
    if bridge_ns in nss:
        for link in state.get("links", []):
            _ip("-n", bridge_ns, "link", "del", link["peer"], check=False)
        _ip("-n", bridge_ns, "link", "del", state.get("bridge", bridge_ns), check=False)
    for ns in nss:
        r = _ip("netns", "del", ns, check=False)
        if r.returncode != 0 and ns in list_netns():
            problems.append(f"ip netns del {ns}: {r.stderr.strip()}")
    # Safety sweep of the root namespace: we never create links there, but
    # remove any that carry our exact names (e.g. from a manual experiment).
    pat = re.compile(rf"^{re.escape(prefix)}-(br|head|driver|m[0-9]+)$")
    for name in _root_links():
        if pat.match(name):
            _ip("link", "del", name, check=False)
    sd = state_dir_for(prefix)
    if sd.exists():
        shutil.rmtree(sd, ignore_errors=True)
        if sd.exists():
            problems.append(f"could not remove {sd}")
    if not quiet:
        for p in problems:
            print(f"local-cluster: {p}", file=sys.stderr)
    return problems


def _root_links() -> list[str]:
    r = _ip("-o", "link", "show", check=False)
    names = []
    for ln in r.stdout.splitlines():
        parts = ln.split(":", 2)
        if len(parts) >= 2:
            names.append(parts[1].strip().split("@")[0])
    return names


# --------------------------------------------------------------------------


class NetnsCluster:
    """A head, N members and a driver host, each in its own network namespace,
    joined by a bridge that lives in a namespace of its own.

    ``head_cmd``/``member_cmd`` are templates (a shell-words string or a list
    of words) with placeholders {ip} {port} {head} {head_ip} {num_cpus} {host}
    {python} {prefix} {state_dir}; None means the babyray CLI
    (``DEFAULT_HEAD_CMD``/``DEFAULT_MEMBER_CMD``).  A member_cmd of ``""``
    or ``[]`` starts nothing on members (plumbing only); so does a head_cmd
    of ``""``, which also skips waiting for the head port.

    ``env`` is added to the environment of every process started in the
    cluster.  Unless ``env`` sets BABYRAY_AUTH_TOKEN(_PATH) or
    BABYRAY_AUTH_MODE, ``up()`` writes a fresh cluster token to
    <state_dir>/auth_token (0600) and every process gets
    BABYRAY_AUTH_TOKEN_PATH naming it (the token is never on a command
    line); ``host_env(host, {"BABYRAY_AUTH_TOKEN_PATH": ""})`` makes an
    outsider without it.  Each process also gets BABYRAY_ADDRESS=<head ip:port>,
    BABYRAY_NODE_IP=<its ip>, THESPIAN_BASE_IPADDR=<its ip> (Thespian
    otherwise falls back to 127.0.0.1 because there is no default route),
    THESPLOG_FILE=<state_dir>/<host>.thespian.log (unless ``env`` sets it),
    and the repo root prepended to PYTHONPATH.

    Use as a context manager: ``with NetnsCluster(random_prefix(), 2) as c:``
    -- teardown always happens, also when ``up()`` fails halfway.
    """

    def __init__(
        self,
        prefix: str | None = None,
        members: int = 2,
        head_cmd: str | Sequence[str] | None = None,
        member_cmd: str | Sequence[str] | None = None,
        env: Mapping[str, str] | None = None,
        num_cpus: int = DEFAULT_NUM_CPUS,
        port: int = DEFAULT_PORT,
        head_timeout: float = 60.0,
        member_grace: float = 0.5,
        keep_on_failure: bool = False,
        log=None,
    ):
        self.prefix = check_prefix(prefix or random_prefix())
        if not 0 <= members <= MAX_MEMBERS:
            raise NetnsError(f"members must be 0..{MAX_MEMBERS}")
        self.members = members
        self.head_cmd = DEFAULT_HEAD_CMD if head_cmd is None else head_cmd
        self.member_cmd = DEFAULT_MEMBER_CMD if member_cmd is None else member_cmd
        self.env = dict(env or {})
        self.num_cpus = num_cpus
        self.port = port
        self.head_timeout = head_timeout
        self.member_grace = member_grace
        self.keep_on_failure = keep_on_failure
        self._log = log or (lambda msg: None)
        self._procs: list[subprocess.Popen] = []
        self.state: dict = {}
        self.last_state: dict = {}  # state as it was when down() ran

    # ---- names and addresses
    @property
    def hosts(self) -> list[str]:
        return ["head"] + [f"m{k}" for k in range(1, self.members + 1)] + ["driver"]

    @property
    def member_hosts(self) -> list[str]:
        return [f"m{k}" for k in range(1, self.members + 1)]

    @property
    def bridge_ns(self) -> str:
        return f"{self.prefix}-br"

    @property
    def head_address(self) -> str:
        return f"{HEAD_IP}:{self.port}"

    @property
    def state_dir(self) -> Path:
        return state_dir_for(self.prefix)

    @property
    def state_file(self) -> Path:
        return self.state_dir / "state.json"

    def ns(self, host) -> str:
        """Namespace name of a host ('head', 'm1', 1, 'driver')."""
        host = normalize_host(host)
        self._check_host(host)
        return f"{self.prefix}-{host}"

    def host_ip(self, host) -> str:
        host = normalize_host(host)
        self._check_host(host)
        return host_ip_for(host)

    def log_path(self, host) -> Path:
        return self.state_dir / f"{normalize_host(host)}.log"

    def _check_host(self, host: str) -> None:
        if host not in self.hosts:
            raise NetnsError(f"no host {host!r} in cluster {self.prefix} (hosts: {', '.join(self.hosts)})")

    # ---- state file
    def _save(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".tmp")
        with open(tmp, "w") as f:
            json.dump(self.state, f, indent=2)
        os.replace(tmp, self.state_file)

    @classmethod
    def attach(cls, prefix: str) -> "NetnsCluster":
        """A NetnsCluster for an existing cluster (from its state file)."""
        st = load_state(check_prefix(prefix))
        if st is None:
            raise NetnsError(f"no cluster {prefix!r} ({state_dir_for(prefix)} has no state.json)")
        c = cls(
            prefix,
            st["members"],
            head_cmd=st["head_cmd"],
            member_cmd=st["member_cmd"],
            env=st.get("env"),
            num_cpus=st["num_cpus"],
            port=st["port"],
        )
        c.state = st
        return c

    # ---- bring up
    def up(self) -> "NetnsCluster":
        existing = _prefix_namespaces(self.prefix)
        if existing:
            raise ClusterExists(
                f"cluster {self.prefix!r} already exists ({', '.join(existing)}); run down first"
            )
        self.state = {
            "prefix": self.prefix,
            "status": "starting",
            "created": time.time(),
            "subnet": f"{SUBNET}.0/{PREFIX_LEN}",
            "members": self.members,
            "port": self.port,
            "num_cpus": self.num_cpus,
            "head_address": self.head_address,
            "head_cmd": self.head_cmd,
            "member_cmd": self.member_cmd,
            "env": self.env,
            "bridge_ns": self.bridge_ns,
            "bridge": self.bridge_ns,
            # planned up-front so a half-made cluster can be torn down
            "namespaces": [self.bridge_ns] + [f"{self.prefix}-{h}" for h in self.hosts],
            "hosts": {
                h: {
                    "ns": f"{self.prefix}-{h}",
                    "ip": host_ip_for(h),
                    "ifname": HOST_IFNAME,
                    "log": str(self.log_path(h)),
                }
                for h in self.hosts
            },
            "links": [],
            "processes": [],
        }
        self._save()
        if not any(
            k in self.env for k in ("BABYRAY_AUTH_TOKEN", "BABYRAY_AUTH_TOKEN_PATH", "BABYRAY_AUTH_MODE")
        ):
            self.env["BABYRAY_AUTH_TOKEN_PATH"] = str(self._write_token())
            self._save()
        try:
            self._plumb()
            self._start_all()
            self.state["status"] = "up"
            self._save()
        except BaseException as e:
            self.state["status"] = "failed"
            with contextlib.suppress(Exception):
                self._save()
            if not self.keep_on_failure:
                self.down()
            raise e
        return self

    def _write_token(self) -> Path:
        """A fresh cluster token in <state_dir>/auth_token, readable by this user only."""
        path = self.state_dir / "auth_token"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32) + "\n")
        return path

    def _plumb(self) -> None:
        br = self.bridge_ns
        self._log(f"creating bridge namespace {br}")
        _ip("netns", "add", br)
        _ip("-n", br, "link", "set", "lo", "up")
        _ip("-n", br, "link", "add", self.state["bridge"], "type", "bridge")
        _ip("-n", br, "link", "set", self.state["bridge"], "up")
        for h in self.hosts:
            ns, ip, peer = self.ns(h), self.host_ip(h), f"{self.prefix}-{h}"
            self._log(f"creating {ns} ({ip})")
            _ip("netns", "add", ns)
            _ip("-n", ns, "link", "set", "lo", "up")
            _ip("-n", ns, "link", "add", HOST_IFNAME, "type", "veth", "peer", "name", peer, "netns", br)
            self.state["links"].append(
                {"host": h, "ns": ns, "ifname": HOST_IFNAME, "peer": peer, "peer_ns": br}
            )
            self._save()
            _ip("-n", br, "link", "set", peer, "master", self.state["bridge"])
            _ip("-n", br, "link", "set", peer, "up")
            _ip("-n", ns, "addr", "add", f"{ip}/{PREFIX_LEN}", "dev", HOST_IFNAME)
            _ip("-n", ns, "link", "set", HOST_IFNAME, "up")
            if _ip("-n", ns, "route", "show", "default").stdout.strip():
                raise NetnsError(f"{ns} unexpectedly has a default route")

    def _start_all(self) -> None:
        if self.head_cmd:
            head = self.start_host("head")
            self._log(f"waiting for {self.head_address} (from driver namespace)")
            self.wait_tcp(HEAD_IP, self.port, timeout=self.head_timeout, watch=head, watch_name="head")
        started = [(h, self.start_host(h)) for h in self.member_hosts if self.member_cmd]
        if started and self.member_grace > 0:
            time.sleep(self.member_grace)
            for h, p in started:
                rc = p.poll()
                if rc not in (None, 0):
                    raise NetnsError(f"{h} exited with {rc} right after start\n" + self.log_tail(h))

    def cmd_for(self, host) -> list[str]:
        """The expanded start command of a host (head or member)."""
        host = normalize_host(host)
        template = self.head_cmd if host == "head" else self.member_cmd
        if host == "driver":
            raise NetnsError("the driver host has no start command")
        return expand_cmd(template, self._values(host))

    def _values(self, host: str) -> dict:
        return {
            "ip": self.host_ip(host),
            "port": self.port,
            "head": self.head_address,
            "head_ip": HEAD_IP,
            "num_cpus": self.num_cpus,
            "host": host,
            "python": sys.executable,
            "prefix": self.prefix,
            "state_dir": str(self.state_dir),
        }

    def start_host(self, host) -> subprocess.Popen:
        """(Re)start the configured command of ``host`` (head or mK), e.g.
        after ``kill_host``.  Output goes to ``<state_dir>/<host>.log``."""
        host = normalize_host(host)
        argv = self.cmd_for(host)
        if not argv:
            raise NetnsError(f"no command configured for {host}")
        self._log(f"starting {host}: {shlex.join(argv)}")
        return self.popen_in(host, argv, log=self.log_path(host), name=host)

    # ---- processes
    def host_env(self, host, extra: Mapping[str, str] | None = None) -> dict:
        host = normalize_host(host)
        env = dict(os.environ)
        env.update(self.env)
        ip = self.host_ip(host)
        env.update(
            {
                "BABYRAY_ADDRESS": self.head_address,
                "BABYRAY_NODE_IP": ip,
                "THESPIAN_BASE_IPADDR": ip,
                "BABYRAY_NETNS_PREFIX": self.prefix,
                "BABYRAY_NETNS_HOST": host,
            }
        )
        if "THESPLOG_FILE" not in self.env:
            # Thespian's own log, else shared /tmp/thespian.log
            env["THESPLOG_FILE"] = str(self.state_dir / f"{host}.thespian.log")
        pp = env.get("PYTHONPATH")
        env["PYTHONPATH"] = str(REPO_ROOT) + (os.pathsep + pp if pp else "")
        if extra:
            env.update(extra)
        return env

    def argv_in(self, host, cmd: str | Sequence[str]) -> list[str]:
        """argv that runs ``cmd`` inside ``host``'s namespace.  A string is
        run by /bin/sh -c."""
        cmd = ["/bin/sh", "-c", cmd] if isinstance(cmd, str) else list(cmd)
        return ["ip", "netns", "exec", self.ns(host), *cmd]

    def popen_in(
        self,
        host,
        cmd: str | Sequence[str],
        *,
        log: str | Path | None = None,
        name: str | None = None,
        env: Mapping[str, str] | None = None,
        start_new_session: bool = True,
        record: bool = True,
        **popen_kwargs,
    ) -> subprocess.Popen:
        """Start ``cmd`` in ``host``'s namespace (own session / process group
        by default) and record its pid in the state file.  ``log``: a file
        that gets stdout+stderr (appended).  ``env`` is merged over
        ``host_env(host)``."""
        argv = self.argv_in(host, cmd)
        kw = dict(stdin=subprocess.DEVNULL)
        logf = None
        if log is not None:
            logf = open(log, "ab")
            logf.write(f"==== {time.strftime('%Y-%m-%d %H:%M:%S')} {shlex.join(argv)}\n".encode())
            logf.flush()
            kw.update(stdout=logf, stderr=subprocess.STDOUT)
        kw.update(popen_kwargs)
        try:
            p = subprocess.Popen(
                argv, env=self.host_env(host, env), start_new_session=start_new_session, **kw
            )
        finally:
            if logf:
                logf.close()
        self._procs.append(p)
        if record:
            self.state.setdefault("processes", []).append(
                {
                    "host": normalize_host(host),
                    "name": name or normalize_host(host),
                    "pid": p.pid,
                    # own process group only with a new session: never killpg ours
                    "pgid": p.pid if start_new_session else None,
                    "starttime": _proc_starttime(p.pid),
                    "argv": argv,
                    "log": str(log) if log else None,
                    "started": time.time(),
                }
            )
            self._save()
        return p

    def run(
        self, cmd: str | Sequence[str], host="driver", *, env: Mapping[str, str] | None = None, **run_kwargs
    ) -> subprocess.CompletedProcess:
        """``subprocess.run`` of ``cmd`` in the driver namespace (or ``host``)
        with BABYRAY_ADDRESS set.  A string is run by /bin/sh -c."""
        return subprocess.run(self.argv_in(host, cmd), env=self.host_env(host, env), **run_kwargs)

    def pids(self, host) -> list[int]:
        return [p for p in netns_pids(self.ns(host)) if pid_alive(p)]

    def _reap(self) -> None:
        for p in self._procs:
            p.poll()

    def kill_host(self, host, sig: int = signal.SIGKILL, timeout: float = 5.0) -> list[int]:
        """Send ``sig`` (default SIGKILL) to every process in ``host``'s
        namespace (``ip netns pids``) and, for SIGKILL, wait until none is
        left.  The host's network stays up.  Returns the pids signalled."""
        ns = self.ns(host)
        killed: list[int] = []
        deadline = time.monotonic() + timeout
        while True:
            self._reap()
            pids = [p for p in netns_pids(ns) if pid_alive(p) and p != os.getpid()]
            if not pids:
                return killed
            for p in pids:
                _kill(p, sig)
                if p not in killed:
                    killed.append(p)
            if sig != signal.SIGKILL:
                return killed
            if time.monotonic() > deadline:
                raise NetnsError(f"processes in {ns} survive SIGKILL: {pids}")
            time.sleep(0.05)

    def wait_tcp(
        self,
        ip: str,
        port: int,
        timeout: float = 30.0,
        from_host="driver",
        watch: subprocess.Popen | None = None,
        watch_name: str = "process",
    ) -> None:
        """Wait until ``ip:port`` accepts TCP connections from ``from_host``.
        If ``watch`` exits non-zero meanwhile, fail at once."""
        probe = subprocess.Popen(
            self.argv_in(from_host, [sys.executable, "-c", _PROBE, ip, str(port), str(timeout)]),
            stdin=subprocess.DEVNULL,
        )
        try:
            while True:
                rc = probe.poll()
                if rc == 0:
                    return
                if rc is not None:
                    raise NetnsError(
                        f"{ip}:{port} not reachable from "
                        f"{from_host} after {timeout}s" + self._tail_for(watch_name)
                    )
                if watch is not None and watch.poll() not in (None, 0):
                    raise NetnsError(
                        f"{watch_name} exited with {watch.returncode}"
                        f" before {ip}:{port} accepted connections" + self._tail_for(watch_name)
                    )
                time.sleep(0.05)
        finally:
            if probe.poll() is None:
                probe.kill()
                probe.wait()

    def _tail_for(self, name: str) -> str:
        try:
            return "\n" + self.log_tail(name)
        except NetnsError:
            return ""

    def log_tail(self, host, lines: int = 30) -> str:
        path = self.log_path(host)
        try:
            text = path.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return f"(no log {path})"
        return f"--- last lines of {path} ---\n" + "\n".join(text)

    # ---- teardown
    def down(self, grace: float = 3.0) -> list[str]:
        """Kill everything, delete namespaces, links and the state dir.
        Idempotent.  Returns a list of problems (empty when clean)."""
        if self.state:
            with contextlib.suppress(Exception):
                self._save()  # make sure down_prefix sees every pid we know
        problems = down_prefix(self.prefix, grace=grace, reap=self._reap)
        self._reap()
        if self.state:
            self.last_state, self.state = self.state, {}
        return problems

    def __enter__(self) -> "NetnsCluster":
        return self.up()

    def __exit__(self, *exc) -> None:
        self.down()

    def __repr__(self) -> str:
        return f"NetnsCluster({self.prefix!r}, members={self.members})"
