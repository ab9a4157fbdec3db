"""Where an alert's latency goes: the e2e benchmark's paced phase with the sidecar's
loop timed per batch, each alert's latency split into its parts.

Run: ``python -m benchmarks.e2e_latency [--quick] [--variants b,b-50ms]``. Each
variant is the e2e benchmark's (the same workload, config and paced phase), but the
``driftline run`` process is started through this module, which wraps the loop's
steps with wall-clock stamps (one trace line per batch; a few µs per batch and
record). Per alert, from the Kafka timestamp of the record that caused it:

* **fetch**: until ``KafkaSource.poll`` handed the record to the loop: the broker
  holding the fetch for the batch window (``fetch_max_wait_ms``), or the response
  waiting in the client while the loop processed and committed the previous batch;
* **window**: from then until the batch was assembled (the rest of the window);
* **process**: ``Processor.process_batch`` (decode, engine, detectors);
* **offsets**: ``Checkpoint.commit`` waiting for the batch's consumer offsets to join
  the transaction (two round trips on a side thread, begun before the processing);
* **sends**: the rest of ``Checkpoint.commit`` before the transaction commits
  (outputs, changelog journal);
* **commit**: the transaction's commit (flush, EndTxn);
* **reader**: from the commit's return until the benchmark's ``read_committed``
  consumer got the alert (the commit markers, its fetch).

The parts are percentiles of their own distributions (the p99s do not add up to
the total's). Timings are never asserted.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
import yaml

from benchmarks._kafka import REPO, local_broker
from benchmarks.e2e import VARIANTS, Run, _clean_env, _percentile, sidecar_config, workload
from benchmarks.e2e_spy import py_spy
from benchmarks.harness import markdown_table

PARTS = ("fetch", "window", "process", "offsets", "sends", "commit", "reader", "total")


# ------------------------------------------------------------- in the sidecar
def _now_ms() -> float:
    return time.time() * 1000


def instrument(trace_path: str) -> None:
    """Wrap the loop's steps so that each committed batch writes one trace line."""
    from pipeline.core.processor import Processor
    from pipeline.io.kafka import KafkaSource, TransactionalKafkaSink
    from pipeline.runtime.checkpoint import Checkpoint
    from pipeline.runtime.loop import Loop

    out = open(trace_path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115 (process-long)
    polls: list[tuple[float, list[tuple[int, int]]]] = []
    batch: dict[str, Any] = {}
    poll, poll_batch = KafkaSource.poll, Loop.poll_batch
    process_batch, commit, txn_commit = (
        Processor.process_batch,
        Checkpoint.commit,
        TransactionalKafkaSink.commit,
    )
    settle = Checkpoint._settle_offsets

    def traced_poll(self: Any, max_records: int, timeout_ms: int) -> Any:
        records = poll(self, max_records, timeout_ms)
        if records:
            polls.append((_now_ms(), [(r.partition, r.offset, r.timestamp_ms) for r in records]))
        return records

    def traced_poll_batch(self: Any) -> Any:
        polls.clear()
        called = _now_ms()
        records = poll_batch(self)
        batch.clear()
        batch.update(called=called, assembled=_now_ms(), polls=list(polls), n=len(records))
        return records

    def traced_process_batch(self: Any, records: Any) -> Any:
        cpu = time.thread_time()
        outputs = process_batch(self, records)
        batch["processed"] = _now_ms()
        batch["process_cpu"] = (time.thread_time() - cpu) * 1000
        return outputs

    def traced_txn_commit(self: Any) -> None:
        batch["txn"] = _now_ms()
        batch["sends_cpu"] = (time.thread_time() - batch["cpu"]) * 1000
        txn_commit(self)

    def traced_settle(self: Any) -> None:
        settle(self)
        batch["settled"] = _now_ms()
        batch["cpu"] = time.thread_time()

    def traced_commit(self: Any, outputs: Any, publish: Any) -> None:
        batch["alerts"] = sum(m.kind == "alert" for messages in outputs for m in messages)
        commit(self, outputs, publish)
        batch["committed"] = _now_ms()
        out.write(orjson.dumps(batch).decode() + "\n")

    KafkaSource.poll = traced_poll  # type: ignore[method-assign]
    Loop.poll_batch = traced_poll_batch  # type: ignore[method-assign]
    Processor.process_batch = traced_process_batch  # type: ignore[method-assign]
    TransactionalKafkaSink.commit = traced_txn_commit  # type: ignore[method-assign]
    Checkpoint.commit = traced_commit  # type: ignore[method-assign]
    Checkpoint._settle_offsets = traced_settle  # type: ignore[method-assign]


# ------------------------------------------------------------------ the driver
class TracedRun(Run):
    """An e2e run whose sidecar writes a trace; the paced phase's start is noted."""

    trace: Path
    paced_from_ms: float = 0.0
    tree: Path = REPO
    """The source tree the sidecar runs from (``--baseline``: another checkout)."""
    label: str = ""

    def start(self) -> None:
        assert self.variant.kind == "driftline", "only driftline variants are traced"
        config = self.log_path.with_suffix(".yaml")
        config.write_text(
            yaml.safe_dump(sidecar_config(self.variant, self.prefix, self.args.bootstrap))
        )
        self.trace = self.log_path.with_suffix(".trace")
        cmd = [
            sys.executable, "-m", "benchmarks.e2e_latency", "--trace", str(self.trace),
            "--", "--log-json", "run", "--config", str(config),
        ]  # fmt: skip
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                cmd,
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
                cwd=self.tree,
                env=_clean_env(),
            )

    def latency(self, progress: Any, paced: Any) -> Any:
        self.paced_from_ms = _now_ms()
        spy = py_spy() if self.args.spy else None
        sampler = None
        if spy is not None:
            assert self.proc is not None
            sampler = subprocess.Popen(
                [spy, "record", "-p", str(self.proc.pid), "-r", "100", "-f", "raw", "-o",
                 str(self.log_path.with_suffix(".spy")), "--nonblocking", "--threads"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
        try:
            return super().latency(progress, paced)
        finally:
            if sampler is not None:
                sampler.send_signal(signal.SIGINT)
                sampler.wait(timeout=60)


def parts(run: TracedRun) -> tuple[dict[str, list[float]], list[dict[str, Any]]]:
    """Each alert's latency split into ``PARTS`` (ms), and the paced phase's batches."""
    batches = [orjson.loads(line) for line in run.trace.read_text().splitlines() if line]
    paced = [b for b in batches if b["assembled"] >= run.paced_from_ms]
    where: dict[tuple[int, int], tuple[float, dict[str, Any]]] = {}
    for b in paced:
        for fetched, triples in b["polls"]:
            for partition, offset, _stamp in triples:
                where[(partition, offset)] = (fetched, b)
    out: dict[str, list[float]] = {p: [] for p in PARTS}
    for partition, offset, sent, received in run.alert_times:
        if (partition, offset) not in where:
            continue
        fetched, b = where[(partition, offset)]
        txn = b.get("txn", b["committed"])
        for name, value in zip(
            PARTS,
            (
                fetched - sent,
                b["assembled"] - fetched,
                b["processed"] - b["assembled"],
                b.get("settled", b["processed"]) - b["processed"],
                txn - b.get("settled", b["processed"]),
                b["committed"] - txn,
                received - b["committed"],
                received - sent,
            ),
            strict=True,
        ):
            out[name].append(value)
    return out, paced


def _ms(values: Sequence[float], q: float) -> str:
    return f"{_percentile(values, q):.1f}" if values else "-"


def report(runs: Sequence[TracedRun]) -> str:
    """Tables per label (a variant, or a variant run from ``--baseline``), the repeats
    of a label pooled."""
    rows, batch_rows, record_rows = [], [], []
    spans_names = ("process", "offsets", "sends", "commit", "cycle")
    labels = list(dict.fromkeys(run.label for run in runs))
    for label in labels:
        split: dict[str, list[float]] = {p: [] for p in PARTS}
        spans: dict[str, list[float]] = {
            "process": [],
            "offsets": [],
            "sends": [],
            "commit": [],
            "cycle": [],
        }
        sizes: list[float] = []
        committed: list[float] = []
        n_batches = 0
        for run in (r for r in runs if r.label == label):
            alert_parts, paced = parts(run)
            for name, values in alert_parts.items():
                split[name].extend(values)
            n_batches += len(paced)
            sizes.extend(b["n"] for b in paced)
            spans["process"].extend(b["processed"] - b["assembled"] for b in paced)
            spans["offsets"].extend(
                b.get("settled", b["processed"]) - b["processed"] for b in paced
            )
            spans["sends"].extend(
                b.get("txn", b["committed"]) - b.get("settled", b["processed"]) for b in paced
            )
            spans["commit"].extend(b["committed"] - b.get("txn", b["committed"]) for b in paced)
            spans["cycle"].extend(
                b["committed"] - a["committed"] for a, b in itertools.pairwise(paced)
            )
            committed.extend(
                b["committed"] - stamp
                for b in paced
                for _t, triples in b["polls"]
                for *_po, stamp in triples
            )
        alerts = len(split["total"])
        for q in (50, 99):
            rows.append([label, str(alerts), f"p{q}", *(_ms(split[p], q) for p in PARTS)])
            batch_rows.append(
                [
                    label,
                    str(n_batches),
                    f"p{q}",
                    _ms(sizes, q).removesuffix(".0"),
                    *(_ms(spans[k], q) for k in spans),
                ]
            )
        record_rows.append(
            [label, str(len(committed)), *(_ms(committed, q) for q in (50, 90, 99, 99.9))]
        )
    return (
        "Per alert (ms; each part's own percentile):\n\n"
        + markdown_table(["variant", "alerts", "", *PARTS], rows)
        + "\n\nPer batch of the paced phase (ms; cycle: from one commit to the next):\n\n"
        + markdown_table(
            ["variant", "batches", "", "records", *spans_names],
            batch_rows,
        )
        + "\n\nEvery record of the paced phase, from its Kafka timestamp to its batch's "
        "commit (ms; the alerts' latency without the reader, over every record):\n\n"
        + markdown_table(["variant", "records", "p50", "p90", "p99", "p99.9"], record_rows)
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap", default=f"127.0.0.1:{os.environ.get('KAFKA_PORT', '39092')}")
    parser.add_argument("--events", type=int, help="backlog events (50,000; --quick 10,000)")
    parser.add_argument("--quick", action="store_true", help="10k backlog, 10 s paced phase")
    parser.add_argument("--rate", type=float, default=300.0, help="paced events/s (300)")
    parser.add_argument("--seconds", type=float, help="paced phase length (30; --quick 10)")
    parser.add_argument("--variants", default="b", help="comma-separated driftline variants")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per phase")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument(
        "--baseline",
        help="also run each variant from this source tree (another checkout, with this "
        "module copied in), interleaved: an A/B of code in one run",
    )
    parser.add_argument("--spy", action="store_true", help="py-spy the paced phase (raw, kept)")
    parser.add_argument("--keep", help="keep the traces and logs in this directory")
    parser.add_argument("--trace", help=argparse.SUPPRESS)  # internal: the traced sidecar
    args, rest = parser.parse_known_args(argv)
    if args.trace:
        from pipeline.cli import main as cli_main

        instrument(args.trace)
        sys.exit(cli_main([a for a in rest if a != "--"]))
    args.events = args.events or (10_000 if args.quick else 50_000)
    args.seconds = args.seconds or (10.0 if args.quick else 30.0)
    keys = [k.strip() for k in args.variants.split(",") if k.strip()]
    bad = [k for k in keys if k not in VARIANTS or VARIANTS[k].kind != "driftline"]
    if bad:
        parser.error(f"not driftline variants: {bad}")
    with local_broker(args.bootstrap):
        items = workload(args.events, int(args.rate * args.seconds), args.seed)
        backlog, paced = items[: args.events], items[args.events :]
        runs = []
        with contextlib.ExitStack() as stack:
            tmp = args.keep or stack.enter_context(tempfile.TemporaryDirectory(prefix="dl-lat-"))
            Path(tmp).mkdir(parents=True, exist_ok=True)
            trees = [(REPO, "")] + ([(Path(args.baseline), "@base")] if args.baseline else [])
            for rep in range(args.repeats):
                for key in keys:
                    for tree, suffix in trees:
                        run = TracedRun(VARIANTS[key], rep, args, Path(tmp))
                        run.tree, run.label = tree, f"{key}{suffix}"
                        result = run.execute(backlog, paced)
                        print(
                            f"[{rep}] {run.label}: {result.events_per_s:,.0f} events/s, "
                            f"{result.cpu_us:.0f} CPU µs/event (backlog, traced), alerts "
                            f"{result.alerts}, p99 {result.p99_ms or 0:.0f} ms, paced "
                            f"{result.paced_cpu or 0:.1f} % of a core, "
                            f"load {os.getloadavg()[0]:.1f}",
                            flush=True,
                        )
                        runs.append(run)
            print("\n" + report(runs))


if __name__ == "__main__":
    main()
