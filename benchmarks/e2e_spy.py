"""The sampled profile of ``benchmarks/e2e.py``: where the sidecar's CPU goes by stage.

py-spy samples the ``driftline run`` process of (b) (every thread, only while on the
CPU) from the first committed offset to the last record of the backlog, from outside
the process (``--nonblocking``): unlike the cProfile section, it does not slow Python
calls down, so the shares are those of the timed run. Each sample of the loop's
thread is put in the first stage whose function is on its stack; the kafka-python
client's own threads (network, producer sender) are a stage of their own. µs/event =
share x the CPU per event measured in the same run.

py-spy comes with the ``bench`` extra (``.venv-bench``, ``make bench-e2e``); without
it the section says so.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import yaml

from benchmarks._kafka import REPO, GroupProgress, cpu_seconds, create_topics, delete_topics
from benchmarks._kafka import produce as produce_backlog
from benchmarks.e2e import PARTITIONS, VARIANTS, _clean_env, sidecar_config, topic_names
from benchmarks.harness import markdown_table

__all__ = ["STAGES", "py_spy", "spy_sidecar", "stage_shares"]

STAGES: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "decode (the v1 contract: msgspec fast path, else pydantic)",
        ("RecordDecoder.decode", "Decoder.decode"),
    ),
    ("detector updates (feed_column)", ("feed_column",)),
    ("state journal (report_state, encode, save)", ("report_state", "save_report")),
    ("engine: routing, label join, policy, alerts", ("Processor.process_batch",)),
    ("kafka-python consumer on the loop's thread (poll, fetch parse)", ("KafkaConsumer.poll",)),
    ("records and batch assembly", ("KafkaSource.poll", "Loop.poll_batch")),
    ("checkpoint: sends, flush, transaction", ("Checkpoint.",)),
    ("the loop and its hooks: metrics (lag per record), logs, progress", ("Loop.run_once",)),
)
CLIENT_THREADS = "kafka-python's own threads (network I/O, producer sender)"
IDLE = ("EpollSelector.select", "Condition.wait", "Event.wait", "time.sleep", "lock.acquire")
"""Leaf frames of a thread waiting (py-spy counts a thread blocked in ``epoll`` as
active): left out."""


def py_spy() -> str | None:
    """The py-spy executable: on PATH, or in .venv-bench."""
    found = shutil.which("py-spy")
    bench = REPO / ".venv-bench" / "bin" / "py-spy"
    return found or (str(bench) if bench.exists() else None)


def stage_shares(raw: str) -> tuple[Counter[str], int]:
    """Samples per stage from py-spy's ``raw`` output (``--threads``: the thread is the
    first frame of each stack), and their total; waiting threads left out."""
    per_stage: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        if not line.strip():
            continue
        stack, count = line.rsplit(" ", 1)
        n = int(count)
        frames = stack.split(";")
        if any(frames[-1].startswith(leaf) for leaf in IDLE):
            continue
        total += n
        if "MainThread" not in frames[0]:
            name = frames[0].split(": ", 1)[-1]
            per_stage[CLIENT_THREADS if "kafka-io" in name or "network" in name else name] += n
            continue
        for stage, needles in STAGES:
            if any(needle in frame for frame in frames[1:] for needle in needles):
                per_stage[stage] += n
                break
        else:
            per_stage["other (loop's thread)"] += n
    return per_stage, total


def spy_sidecar(
    args: argparse.Namespace, backlog: Sequence[tuple[str, bytes]], workdir: Path, key: str = "b"
) -> str:
    spy = py_spy()
    if spy is None:
        return "py-spy not found (the bench extra: make bench-e2e): no sampled profile."
    prefix = f"e2e-{uuid.uuid4().hex[:8]}-spy"
    topics = topic_names(prefix)
    inputs = ("predictions", "features", "labels", "training")
    create_topics(
        args.bootstrap,
        {t: PARTITIONS if k in inputs else 1 for k, t in topics.items() if k != "state"},
    )
    progress = GroupProgress(args.bootstrap)
    out = workdir / f"{prefix}.raw"
    proc: subprocess.Popen[bytes] | None = None
    try:
        produce_backlog(args.bootstrap, topics["predictions"], backlog)
        path = workdir / f"{prefix}.yaml"
        path.write_text(yaml.safe_dump(sidecar_config(VARIANTS[key], prefix, args.bootstrap)))
        cmd = [sys.executable, "-m", "pipeline.cli", "--log-json", "run", "--config", str(path)]
        proc = subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO, env=_clean_env()
        )
        n, first, sampler = len(backlog), None, None
        deadline = time.monotonic() + args.timeout
        while time.monotonic() < deadline and proc.poll() is None:
            done = progress.committed(prefix, topics["predictions"])
            if done and first is None:
                first = (done, cpu_seconds(proc.pid))
                sampler = subprocess.Popen(
                    [spy, "record", "-p", str(proc.pid), "-r", "250", "-f", "raw", "-o", str(out),
                     "--nonblocking", "--threads"],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                )  # fmt: skip
            if done is not None and done >= n:
                break
            time.sleep(0.25)
        if first is None or sampler is None:
            return "the sidecar committed nothing in time: no sampled profile."
        cpu = cpu_seconds(proc.pid)
        sampler.send_signal(signal.SIGINT)
        sampler.wait(timeout=60)
    finally:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
        progress.close()
        delete_topics(args.bootstrap, prefix)
    c0, cpu0 = first
    if not out.exists() or n <= c0:
        return "py-spy wrote no samples (ptrace refused?): no sampled profile."
    us = (cpu - cpu0) / (n - c0) * 1e6
    per_stage, total = stage_shares(out.read_text())
    rows = [
        (stage, f"{100 * count / total:.0f} %", f"{us * count / total:.0f}")
        for stage, count in per_stage.most_common()
    ]
    return "\n".join(
        [
            f"py-spy ({os.path.basename(spy)}, 250 Hz, all threads on CPU) of `driftline run`, "
            f"{VARIANTS[key].label}, over {n - c0:,} backlog events: {us:.0f} CPU µs/event, "
            f"{total:,} samples\n",
            markdown_table(("stage", "share of samples", "≈ CPU µs/event"), rows),
        ]
    )
