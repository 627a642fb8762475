"""What one message costs in Thespian itself, under babyray's patches: the floor of every hop.

A private Thespian system (``multiprocTCPBase``, the base babyray runs on, with babyray's
patches applied) holds two plain actors: a pinger and an echo. The pinger sends the echo
``--round-trips`` messages one at a time, each after the previous one came back; then this
process asks the echo from outside (``ActorSystem.ask``, as a driver's external contexts do)
as many times. Reported: the median round trip of each kind and the CPU time (user + system)
the echo's process spent per round trip, i.e. for receiving one message and sending one.
babyray's actor call is the same two messages plus its own work, so its round trip and CPU
can be read against these. Writes benchmarks/results/thespian_floor.json.

    python benchmarks/thespian_floor.py [--round-trips 3000]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from thespian.actors import Actor, ActorSystem  # noqa: E402

from babyray.actors import thespian_setup  # noqa: E402,F401  (applies babyray's Thespian patches)
from babyray.cluster import free_port  # noqa: E402

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Echo(Actor):
    """Sends every ("ping", i) back; ("pid",) -> its process id."""

    def receiveMessage(self, msg: Any, sender: Any) -> None:
        if isinstance(msg, tuple) and msg[:1] == ("pid",):
            self.send(sender, os.getpid())
        elif isinstance(msg, tuple) and msg[:1] == ("ping",):
            self.send(sender, msg)


class Pinger(Actor):
    """("run", n, echo): n round trips to the echo, one at a time; answers their durations."""

    def receiveMessage(self, msg: Any, sender: Any) -> None:
        if isinstance(msg, tuple) and msg[:1] == ("run",):
            self.left, self.echo, self.client, self.times = msg[1], msg[2], sender, []
            self._ping()
        elif isinstance(msg, tuple) and msg[:1] == ("ping",):
            self.times.append(time.perf_counter() - self.sent)
            self.left -= 1
            if self.left:
                self._ping()
            else:
                self.send(self.client, self.times)

    def _ping(self) -> None:
        self.sent = time.perf_counter()
        self.send(self.echo, ("ping", self.left))


def measure(round_trips: int) -> dict:
    system = ActorSystem("multiprocTCPBase", {"Admin Port": free_port()})
    try:
        echo, pinger = system.createActor(Echo), system.createActor(Pinger)
        echo_pid = system.ask(echo, ("pid",), 10)
        system.ask(pinger, ("run", 200, echo), 60)  # warm up: connections open
        cpu = cpu_seconds(echo_pid)
        between_actors = system.ask(pinger, ("run", round_trips, echo), 600)
        cpu_between = (cpu_seconds(echo_pid) - cpu) / round_trips
        external, cpu = [], cpu_seconds(echo_pid)
        for i in range(round_trips):
            start = time.perf_counter()
            system.ask(echo, ("ping", i), 10)
            external.append(time.perf_counter() - start)
        cpu_external = (cpu_seconds(echo_pid) - cpu) / round_trips
    finally:
        system.shutdown()
    return {
        "round_trips": round_trips,
        "actor_to_actor_rtt_median_ms": statistics.median(between_actors) * 1e3,
        "echo_cpu_per_round_trip_us": cpu_between * 1e6,
        "external_ask_rtt_median_ms": statistics.median(external) * 1e3,
        "echo_cpu_per_external_round_trip_us": cpu_external * 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--round-trips", type=int, default=3000)
    args = parser.parse_args()
    before = os.getloadavg()
    result = measure(args.round_trips)
    result["load_average"] = {"before": before, "after": os.getloadavg()}
    for name, value in result.items():
        if name != "load_average":
            print(f"{name:40s} {value:10.3f}" if isinstance(value, float) else f"{name:40s} {value:10d}")
    print(f"load average {before[0]:.2f} before, {result['load_average']['after'][0]:.2f} after")
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, "thespian_floor.json"), "w") as fh:
        json.dump(result, fh, indent=2)


if __name__ == "__main__":
    main()
