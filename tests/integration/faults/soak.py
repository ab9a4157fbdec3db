"""A bounded fault soak on the real broker: bad records, kill -9, broker stops of up to
90 s and rebalances, mixed, under a supervisor; then the alerts against the oracle.

``make soak`` runs the full schedule (a few minutes); ``test_soak.py`` a short one.
The input is produced in chunks while the faults happen. Faults, in an order drawn
from ``seed``, with a few seconds of streaming between them:

* ``kill``: ``kill -9`` of a running sidecar;
* ``outage``: the broker stopped for that many seconds, then started on the same data;
* ``join`` / ``leave``: a second sidecar joins the group, or leaves it (SIGTERM).

The supervisor restarts any sidecar that should run and does not, whatever its exit
code, as Kubernetes restarts a pod's container, and counts the exits by cause. At the
end the group catches up and the committed alerts and dead letters are compared with
one uninterrupted in-memory run over the same records (``sidecars.oracle``).
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.generate import DriftSpec, GeneratorConfig, generate
from pipeline.runtime.exit_codes import STALL_EXIT_CODE
from tests.integration.conftest import KafkaBroker
from tests.integration.sidecars import (
    Deployment,
    SidecarProcess,
    deploy,
    group_caught_up,
    input_records,
    oracle,
    produce,
    read_topic,
    set_topic_config,
)

OVERSIZED = b'{"pad":"' + b"x" * (2_621_440 - 10) + b'"}'  # cut to fit as a dead letter


@dataclass(frozen=True)
class Schedule:
    events: int
    outages_s: tuple[int, ...]
    kills: int
    rebalances: int  # join/leave pairs of the second sidecar
    gap_s: float = 8.0
    seed: int = 7
    partitions: int = 4
    mode: str = "exactly_once"


FULL = Schedule(events=60_000, outages_s=(30, 60, 90), kills=3, rebalances=2)
SHORT = Schedule(events=12_000, outages_s=(25,), kills=1, rebalances=1, gap_s=5.0)


@dataclass
class Report:
    schedule: Schedule
    fault_s: float = 0.0
    total_s: float = 0.0
    faults: list[str] = field(default_factory=list)
    exits: Counter[str] = field(default_factory=Counter)
    bad_records: int = 0
    alerts_expected: int = 0
    alerts_published: int = 0
    lost: int = 0
    duplicated: int = 0
    unexpected: int = 0
    dead_expected: int = 0
    dead_published: int = 0
    dead_lost: int = 0
    dead_duplicated: int = 0

    def render(self) -> str:
        s = self.schedule
        outages = ", ".join(f"{d} s" for d in s.outages_s)
        return "\n".join(
            [
                f"driftline soak ({s.mode}, {s.partitions} partitions, seed {s.seed}): "
                f"{s.events:,} events, {self.bad_records:,} of them bad; "
                f"{self.fault_s:.0f} s of faults, {self.total_s:.0f} s in all",
                f"faults: {s.kills} kill -9, {len(s.outages_s)} broker stops ({outages}), "
                f"{2 * s.rebalances} rebalances (a second sidecar joined and left "
                f"{s.rebalances}x)",
                "order: " + ", ".join(self.faults),
                "sidecar exits (restarted by the supervisor, but a member leaving): "
                + (", ".join(f"{n} {cause}" for cause, n in sorted(self.exits.items())) or "none"),
                f"alerts and rollback commands: expected {self.alerts_expected}, published "
                f"{self.alerts_published}, lost {self.lost}, duplicated {self.duplicated}, "
                f"unexpected {self.unexpected}",
                f"dead letters: expected {self.dead_expected}, published {self.dead_published}, "
                f"lost {self.dead_lost}, duplicated {self.dead_duplicated}",
            ]
        )

    @property
    def exact(self) -> bool:
        # at-least-once may repeat an output (the same bytes); exactly-once may not
        repeats = self.schedule.mode == "exactly_once" and (self.duplicated or self.dead_duplicated)
        return not (
            self.lost
            or repeats
            or self.unexpected
            or self.dead_lost
            or self.exits.get("stall (exit 3)")
            or any(cause.startswith("exit ") for cause in self.exits)
        )


class Supervisor:
    """Keeps the sidecars that should run running; counts why they stopped."""

    def __init__(self, report: Report) -> None:
        self.report = report
        self.wanted: list[SidecarProcess] = []
        self.killed: set[str] = set()

    def tend(self) -> None:
        for sidecar in self.wanted:
            if sidecar.running:
                continue
            assert sidecar.proc is not None
            code = sidecar.proc.returncode
            if sidecar.instance in self.killed:
                cause = "kill -9"
                self.killed.discard(sidecar.instance)
            elif code == STALL_EXIT_CODE:
                cause = "stall (exit 3)"
            else:
                cause = f"exit {code}"
            self.report.exits[cause] += 1
            sidecar.start()

    def wait_until(
        self, done: Callable[[], bool], timeout: float, also: Callable[[], None]
    ) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            assert time.monotonic() < deadline, f"not done within {timeout} s"
            self.sleep(1, also)

    def sleep(self, seconds: float, also: Callable[[], None] = lambda: None) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.tend()
            also()
            time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))


def _assigned(sidecar: SidecarProcess) -> bool:
    """The sidecar's current run was assigned partitions (its log says so)."""
    text = sidecar.log_path.read_text(errors="replace")
    current = text.rsplit(f"==== start {sidecar.starts}", 1)[-1]
    return '"event": "rebalance"' in current


def _stream(schedule: Schedule) -> list[tuple[str, bytes]]:
    n = schedule.events
    events = list(
        generate(
            GeneratorConfig(
                events=n,
                models=6,
                seed=schedule.seed,
                bad_every=499,
                drifts=(
                    DriftSpec(signal="feature:amount", at=n // 4, magnitude=2.0, model="model-0"),
                    DriftSpec(signal="confidence", at=n // 2, magnitude=2.0, model="model-3"),
                    DriftSpec(
                        signal="feature:amount",
                        kind="gradual",
                        at=2 * n // 3,
                        width=2000,
                        magnitude=3.0,
                        model="model-4",
                    ),
                ),
            )
        )
    )
    # two records larger than a dead letter may be: cut to fit, the partition goes on
    events.insert(n // 3, ("model-1", OVERSIZED))
    events.insert(2 * n // 3, ("model-2", OVERSIZED))
    return events


def _compare(deployment: Deployment, report: Report) -> None:
    records = input_records(deployment)
    expected_alerts, expected_dead = oracle(deployment, records)
    got = [
        r.value
        for topic in (deployment.topics.alerts, deployment.topics.rollback_commands)
        for r in read_topic(deployment.bootstrap, topic)
    ]
    dead = [r.value for r in read_topic(deployment.bootstrap, deployment.topics.dlq)]
    want, have = Counter(expected_alerts), Counter(got)
    report.alerts_expected, report.alerts_published = len(expected_alerts), len(got)
    report.lost = sum((want - have).values())
    report.unexpected = sum(1 for v in have if v not in want)
    report.duplicated = sum(n - 1 for v, n in have.items() if v in want and n > 1)
    want_dead, have_dead = Counter(expected_dead), Counter(dead)
    report.dead_expected, report.dead_published = len(expected_dead), len(dead)
    report.dead_lost = sum((want_dead - have_dead).values())
    report.dead_duplicated = sum((have_dead - want_dead).values())
    report.bad_records = len(expected_dead)


def run_soak(broker: KafkaBroker, workdir: Path, schedule: Schedule) -> Report:
    started = time.monotonic()
    report = Report(schedule)
    deployment = deploy(
        broker.bootstrap,
        workdir,
        partitions=schedule.partitions,
        runtime={"mode": schedule.mode},
    )
    set_topic_config(
        broker.bootstrap, deployment.topics.predictions, max_message_bytes=str(4 << 20)
    )
    events = _stream(schedule)
    rng = random.Random(schedule.seed)
    faults: list[tuple[str, int]] = [("outage", d) for d in schedule.outages_s]
    faults += [("kill", 0)] * schedule.kills + [("rebalance", 0)] * schedule.rebalances
    rng.shuffle(faults)
    plan: list[tuple[str, int]] = []
    for kind, arg in faults:  # a rebalance is a join now and a leave two gaps later
        plan += [("join", 0), ("leave", 0)] if kind == "rebalance" else [(kind, arg)]
    # spread the input over the fault phase (a broker takes ~20 s to start here)
    expected_s = len(plan) * schedule.gap_s + sum(schedule.outages_s) + 25 * len(schedule.outages_s)
    chunk = max(1, int(len(events) / expected_s))  # feed() runs about once a second
    sent = 0
    broker_up = True

    def feed() -> None:
        nonlocal sent
        if broker_up and sent < len(events):
            produce(broker.bootstrap, deployment.topics.predictions, events[sent : sent + chunk])
            sent += chunk

    a = SidecarProcess(deployment, "a", workdir)
    b = SidecarProcess(deployment, "b", workdir)
    supervisor = Supervisor(report)
    supervisor.wanted.append(a.start())
    fault_started = time.monotonic()
    try:
        feed()
        for kind, arg in plan:
            supervisor.sleep(schedule.gap_s, feed)
            if kind == "kill":
                victim = rng.choice([s for s in supervisor.wanted if s.running])
                supervisor.killed.add(victim.instance)
                victim.kill9()
                report.faults.append(f"kill -9 {victim.instance}")
            elif kind == "outage":
                broker.stop()
                broker_up = False
                supervisor.sleep(arg)
                broker.start()
                broker_up = True
                report.faults.append(f"broker stop {arg} s")
            elif kind == "join":
                supervisor.wanted.append(b.start())
                report.faults.append("b joins")
            elif kind == "leave":
                # a member that leaves has joined first (a SIGTERM during its start-up,
                # before its signal handler exists, is no leave)
                supervisor.wait_until(lambda: _assigned(b), 120, feed)
                supervisor.wanted.remove(b)
                code = b.terminate()
                report.faults.append("b leaves" + ("" if code == 0 else f" (exit {code})"))
                if code != 0:
                    report.exits[f"exit {code}"] += 1
        report.fault_s = time.monotonic() - fault_started
        while sent < len(events):
            feed()
        deadline = time.monotonic() + 300
        while not group_caught_up(deployment):
            assert time.monotonic() < deadline, "the group did not catch up within 300 s"
            supervisor.sleep(2)
    finally:
        if not broker_up:
            broker.start()
        for sidecar in (a, b):
            if sidecar.running:
                code = sidecar.terminate()
                if code != 0:
                    report.exits[f"exit {code}"] += 1
    _compare(deployment, report)
    report.total_s = time.monotonic() - started
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--short", action="store_true", help="the short schedule of test_soak")
    parser.add_argument("--seed", type=int, default=FULL.seed)
    parser.add_argument("--mode", choices=["exactly_once", "at_least_once"], default=FULL.mode)
    args = parser.parse_args(argv)
    base = SHORT if args.short else FULL
    schedule = Schedule(**{**base.__dict__, "seed": args.seed, "mode": args.mode})
    broker = KafkaBroker()
    broker.start()
    with tempfile.TemporaryDirectory(prefix="driftline-soak-") as tmp:
        report = run_soak(broker, Path(tmp), schedule)
        print(report.render())
        if not report.exact:
            print("NOT EXACT: see the figures above; logs in", tmp, file=sys.stderr)
            input_logs = sorted(Path(tmp).glob("*.log"))
            for path in input_logs:
                print(f"--- {path.name}", *path.read_text().splitlines()[-40:], sep="\n")
    return 0 if report.exact else 1


if __name__ == "__main__":
    sys.exit(main())
