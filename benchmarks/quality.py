"""Detection quality of the derived defaults: recall, delay and false alarms per kind.

Run: ``python -m benchmarks.quality [--scale F] [--kinds K,...] [--seed N]``.

A scenario suite of its own making (issue 15), run through the sidecar's real path:
each kind's streams are one replay (``pipeline.replay.run_replay``: the runtime,
decoder, engine, detectors and alert policy exactly as the sidecar runs them) of a
config that only *describes* the models (features, classes, ``text: true``), so the
monitors are the derived defaults with the default policy.

Kinds (the change in brackets is the issue's target effect):

* ``numeric``    — a transaction amount (log-normal, in cents) and a tenure in whole
  days (gamma, many ties); the amount shifts by a KS distance of 0.05 / [0.10] / 0.20;
* ``confidence`` — a classifier's confidence (beta, mean 0.85, sd 0.08) drops in mean
  by 0.02 / [0.04] / 0.08 (same concentration);
* ``error``      — labelled predictions whose error rate rises from 8 % to 11 % /
  [14 %] / 20 % (the labels arrive with the prediction);
* ``class_mix``  — the predicted class mix of 5 classes moves by a total-variation
  distance of 0.05 / [0.10] / 0.20;
* ``canned``     — a generator answering from a 2,000-word vocabulary (5 % short stock
  answers) starts to answer a fixed refusal for 10 % / [25 %] / 40 % of requests,
  with near-certain token log-probabilities for those;
* ``collapse``   — the same generator (no refusals) grows over-confident: its answers
  stay varied but their mean token surprisal falls by 0.25 / [0.5] / 1 standard
  deviation of a stable answer's (the issue sets no target here; half a standard
  deviation mirrors its confidence target);
* ``embedding``  — 32-dimensional embeddings around one direction (noise 0.15 per
  coordinate) whose mean moves sideways by 0.25 / [0.5] / 1 noise standard deviation
  (again our own target, by the same analogy).

Every model of a stream is one series per watched signal: ``reps`` changed series per
effect size (the change at observation ``change_at``, ``after`` observations follow),
and ``stable`` unchanged series of ``stable_length`` observations. Classifier streams
(confidence, error, class_mix) carry prediction, confidence and a label for every
request, so all their monitors run on every stream.

Printed per kind and effect: recall within 1,000 observations of the change (the
first alert on the changed signal), median delay in observations, firing alerts after
the change per incident they opened (``incident_id``; 1.00 means no repeats), and false
alarms — every firing alert of a stable series, and of a changed series before its
change — per 10,000 observations of a watched series (the unit of ``target_arl0``) and
per 10,000 events of a model. A target row is ``met`` when recall >= 0.9 within 1,000,
the kind's false alarms <= 0.1 per 10,000 observations per series and one alert per
incident; then ``met``/``MISSED`` per kind and overall. ``--save FILE`` keeps a run's
report data; ``--combine FILE ...`` prints one report of saved runs. Never asserts
anything.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from benchmarks.harness import machine_info, markdown_table
from pipeline.config import parse_settings
from pipeline.core.records import Record
from pipeline.io.memory import MemorySink, MemorySource
from pipeline.replay import run_replay

MARGIN = 1000
"""Observations after a change within which an alert counts as detecting it."""
TARGET_RECALL = 0.9
TARGET_FA_PER_10K = 0.1
START = datetime(2026, 1, 5, tzinfo=UTC)
CLASSES = ("approve", "review", "decline", "escalate", "refer")
CLASS_MIX = np.array([0.45, 0.25, 0.15, 0.10, 0.05])


# ------------------------------------------------------------------ scenarios
@dataclass(frozen=True)
class Kind:
    name: str
    model: dict[str, Any]
    """The model description (derived monitors only)."""
    signals: tuple[str, ...]
    """The signals a detection of the change may come from."""
    effects: tuple[float, ...]
    target: float
    """The effect size the issue sets a target for."""
    unit: str
    """How an effect reads: a format of ``effect`` (e.g. ``KS distance {effect:g}``)."""
    events: Callable[[np.random.Generator, str, int, int | None, float], Iterator[list[bytes]]]
    """(rng, model id, length, change index or None, effect) -> the events of each step."""


def _ts(step: int) -> str:
    # one request per second and model; microseconds keep the label after its prediction
    return (START + timedelta(seconds=step)).isoformat().replace("+00:00", "Z")


def _dump(obj: dict[str, Any]) -> bytes:
    return orjson.dumps(obj)


def _numeric(
    rng: np.random.Generator, model: str, n: int, change: int | None, effect: float
) -> Iterator[list[bytes]]:
    # A location shift of a normal by delta has KS distance 2 Phi(delta/2) - 1; the
    # log-normal amount is a monotone transform of it, so the distance is the same.
    delta = 2.0 * statistics.NormalDist().inv_cdf((1.0 + effect) / 2.0)
    for j in range(n):
        z = rng.standard_normal()
        if change is not None and j >= change:
            z += delta
        amount = round(math.exp(3.7 + 0.9 * z), 2)
        tenure = float(int(rng.gamma(2.0, 180.0)))
        yield [
            _dump(
                {
                    "schema": "driftline.feature.v1",
                    "event_id": f"{model}-f{j}",
                    "model_id": model,
                    "model_version": "1",
                    "timestamp": _ts(j),
                    "features": {"amount": amount, "tenure_days": tenure},
                }
            )
        ]


def _classifier(
    what: str,
) -> Callable[[np.random.Generator, str, int, int | None, float], Iterator[list[bytes]]]:
    def events(
        rng: np.random.Generator, model: str, n: int, change: int | None, effect: float
    ) -> Iterator[list[bytes]]:
        shifted_mix = CLASS_MIX.copy()
        if what == "class_mix":
            # move `effect` of probability mass from the top class to the rare ones
            shifted_mix[0] -= effect
            shifted_mix[3] += effect / 2
            shifted_mix[4] += effect / 2
        concentration = 0.85 * 0.15 / 0.08**2 - 1.0
        for j in range(n):
            changed = change is not None and j >= change
            mix = shifted_mix if changed and what == "class_mix" else CLASS_MIX
            cls = int(rng.choice(len(CLASSES), p=mix))
            mean = 0.85 - (effect if changed and what == "confidence" else 0.0)
            confidence = round(float(rng.beta(mean * concentration, (1 - mean) * concentration)), 4)
            error_rate = 0.08 + (effect if changed and what == "error" else 0.0)
            wrong = rng.random() < error_rate
            label = CLASSES[(cls + 1 + int(rng.integers(0, len(CLASSES) - 1))) % len(CLASSES)]
            request = f"{model}-r{j}"
            yield [
                _dump(
                    {
                        "schema": "driftline.prediction.v1",
                        "event_id": f"{model}-p{j}",
                        "model_id": model,
                        "model_version": "1",
                        "timestamp": _ts(j),
                        "request_id": request,
                        "prediction": CLASSES[cls],
                        "confidence": max(confidence, 0.2),
                    }
                ),
                _dump(
                    {
                        "schema": "driftline.label.v1",
                        "event_id": f"{model}-l{j}",
                        "model_id": model,
                        "request_id": request,
                        "label": label if wrong else CLASSES[cls],
                        "timestamp": _ts(j),
                    }
                ),
            ]

    return events


_WORDS = [f"w{i}" for i in range(2000)]
_ZIPF = 1.0 / np.arange(1, len(_WORDS) + 1) ** 1.1
_ZIPF /= _ZIPF.sum()
_STOCK = ("Yes.", "No.", "I don't know.", "Thanks!", "Could you rephrase that?")
_CANNED = "I'm sorry, but I can't help with that request. Please contact support."


def _text(
    rng: np.random.Generator, model: str, n: int, change: int | None, effect: float
) -> Iterator[list[bytes]]:
    for j in range(n):
        changed = change is not None and j >= change
        u = rng.random()
        if changed and u < effect:
            text = _CANNED
            logprobs = np.round(-rng.exponential(0.02, size=14), 4)
        elif rng.random() < 0.05:
            text = _STOCK[int(rng.integers(0, len(_STOCK)))]
            logprobs = np.round(-rng.exponential(0.3, size=3), 4)
        else:
            length = int(rng.integers(8, 40))
            text = " ".join(rng.choice(_WORDS, size=length, p=_ZIPF))
            logprobs = np.round(-rng.gamma(1.2, 1.6, size=length), 4)
        yield [
            _dump(
                {
                    "schema": "driftline.prediction.v1",
                    "event_id": f"{model}-p{j}",
                    "model_id": model,
                    "model_version": "1",
                    "timestamp": _ts(j),
                    "request_id": f"{model}-r{j}",
                    "prediction": "text",
                    "output_text": text,
                    "token_logprobs": [min(0.0, float(x)) for x in logprobs],
                }
            )
        ]


_SURPRISAL_SD = 0.533
"""Standard deviation of a stable answer's mean surprisal (nats per token) in ``_text``'s
answers, stock replies included (measured on 20,000)."""


def collapse_shrink(effect: float) -> float:
    """The factor on the token surprisals of ``_collapse``'s varied answers that lowers
    a response's mean surprisal by ``effect`` stable standard deviations (their mean
    surprisal is 1.2 x 1.6 per token, and they are 95 % of the answers)."""
    return 1.0 - effect * _SURPRISAL_SD / (0.95 * 1.2 * 1.6)


def _collapse(
    rng: np.random.Generator, model: str, n: int, change: int | None, effect: float
) -> Iterator[list[bytes]]:
    """``_text``'s answers without canned ones; after the change the model grows
    over-confident: the per-token surprisal of its (still varied) answers shrinks so
    that the mean surprisal falls by ``effect`` stable standard deviations."""
    shrink = collapse_shrink(effect)
    for j in range(n):
        changed = change is not None and j >= change
        if rng.random() < 0.05:
            text = _STOCK[int(rng.integers(0, len(_STOCK)))]
            logprobs = np.round(-rng.exponential(0.3, size=3), 4)
        else:
            length = int(rng.integers(8, 40))
            text = " ".join(rng.choice(_WORDS, size=length, p=_ZIPF))
            scale = 1.6 * (shrink if changed else 1.0)
            logprobs = np.round(-rng.gamma(1.2, scale, size=length), 4)
        yield [
            _dump(
                {
                    "schema": "driftline.prediction.v1",
                    "event_id": f"{model}-p{j}",
                    "model_id": model,
                    "model_version": "1",
                    "timestamp": _ts(j),
                    "request_id": f"{model}-r{j}",
                    "prediction": "text",
                    "output_text": text,
                    "token_logprobs": [min(0.0, float(x)) for x in logprobs],
                }
            )
        ]


_EMBEDDING_DIM = 32
_EMBEDDING_NOISE = 0.15
"""Per-coordinate noise around the mean direction (a vector's cosine to it ~0.8)."""


def _embedding(
    rng: np.random.Generator, model: str, n: int, change: int | None, effect: float
) -> Iterator[list[bytes]]:
    """Embeddings around one direction; after the change the mean moves sideways by
    ``effect`` per-coordinate noise standard deviations."""
    mean = np.zeros(_EMBEDDING_DIM)
    mean[0] = 1.0
    moved = mean.copy()
    moved[1] = effect * _EMBEDDING_NOISE
    for j in range(n):
        centre = moved if change is not None and j >= change else mean
        vector = np.round(rng.normal(centre, _EMBEDDING_NOISE), 4)
        yield [
            _dump(
                {
                    "schema": "driftline.prediction.v1",
                    "event_id": f"{model}-p{j}",
                    "model_id": model,
                    "model_version": "1",
                    "timestamp": _ts(j),
                    "request_id": f"{model}-r{j}",
                    "prediction": "vector",
                    "embedding": vector.tolist(),
                }
            )
        ]


KINDS: dict[str, Kind] = {
    k.name: k
    for k in (
        Kind(
            "numeric",
            {"features": {"amount": "numeric", "tenure_days": "numeric"}},
            ("feature:amount",),
            (0.05, 0.10, 0.20),
            0.10,
            "KS distance {effect:g}",
            _numeric,
        ),
        Kind(
            "confidence",
            {"classes": list(CLASSES)},
            ("confidence",),
            (0.02, 0.04, 0.08),
            0.04,
            "mean drop {effect:g}",
            _classifier("confidence"),
        ),
        Kind(
            "error",
            {"classes": list(CLASSES)},
            ("error",),
            (0.03, 0.06, 0.12),
            0.06,
            "error rate 0.08 -> {rate:.2f}",
            _classifier("error"),
        ),
        Kind(
            "class_mix",
            {"classes": list(CLASSES)},
            ("prediction",),
            (0.05, 0.10, 0.20),
            0.10,
            "TV distance {effect:g}",
            _classifier("class_mix"),
        ),
        Kind(
            "canned",
            {"text": True},
            ("output_text", "token_logprobs"),
            (0.10, 0.25, 0.40),
            0.25,
            "{effect:.0%} canned",
            _text,
        ),
        Kind(
            "collapse",
            {"text": True},
            ("token_logprobs",),
            (0.25, 0.5, 1.0),
            0.5,
            "surprisal -{effect:g} sd",
            _collapse,
        ),
        Kind(
            "embedding",
            {"embedding": True},
            ("embedding",),
            (0.25, 0.5, 1.0),
            0.5,
            "mean moved {effect:g} noise sd",
            _embedding,
        ),
    )
}


# ---------------------------------------------------------------------- runs
Alert = tuple[int, str, str, str]
"""(observation index, signal, status, incident id) of an alert."""


@dataclass
class Series:
    """One model of a stream: where its events sit and what it is."""

    model: str
    effect: float | None
    change: int | None
    length: int
    alerts: list[Alert] = field(default_factory=list)


@dataclass
class KindResult:
    kind: Kind
    series: list[Series]
    events: int
    seconds: float
    watched: int
    """Watched series per model (signals with a derived monitor that sees data)."""


def _interleave(
    kind: Kind, plan: Sequence[Series], seed: int
) -> tuple[list[Record], dict[int, tuple[str, int]]]:
    """All models' events, step by step (the same event time), and offset -> (model, step)."""
    generators = [
        kind.events(np.random.default_rng([seed, i]), s.model, s.length, s.change, s.effect or 0.0)
        for i, s in enumerate(plan)
    ]
    records: list[Record] = []
    where: dict[int, tuple[str, int]] = {}
    longest = max(s.length for s in plan)
    for step in range(longest):
        for s, gen in zip(plan, generators, strict=True):
            if step >= s.length:
                continue
            for value in next(gen):
                where[len(records)] = (s.model, step)
                records.append(Record("bench", 0, len(records), value, s.model.encode()))
    return records, where


def run_kind(kind: Kind, *, reps: int, stable: int, stable_length: int, change_at: int,
             after: int, seed: int) -> KindResult:  # fmt: skip
    plan = [
        Series(f"{kind.name}-e{effect:g}-{r}", effect, change_at, change_at + after)
        for effect in kind.effects
        for r in range(reps)
    ]
    plan += [Series(f"{kind.name}-stable-{r}", None, None, stable_length) for r in range(stable)]
    records, where = _interleave(kind, plan, seed)
    settings = parse_settings(
        {"default_model": kind.model, "runtime": {"http_port": None}}, environ={}
    )
    sink = MemorySink()
    started = time.perf_counter()
    outcome = run_replay(settings, [MemorySource(records)], sink, topic_kinds={})
    elapsed = time.perf_counter() - started
    by_model = {s.model: s for s in plan}
    signals: set[str] = set()
    for message in sink.flushed:
        if message.kind != "alert" or message.value is None:
            continue
        alert = orjson.loads(message.value)
        model, step = where[alert["source"]["offset"]]
        by_model[model].alerts.append(
            (step, alert["signal"], alert.get("status", "firing"), str(alert.get("incident_id")))
        )
    keys = outcome.processor_stats.get("keys_created", 0)
    for s in plan:
        signals.update(a[1] for a in s.alerts)
    watched = max(1, round(keys / len(plan))) if keys else 1
    return KindResult(kind, plan, outcome.stats.events, elapsed, watched)


# ------------------------------------------------------------------- scoring
@dataclass
class Row:
    kind: str
    effect: str
    series: int
    recall: float | None
    median_delay: float | None
    late: int
    per_incident: float | None
    """Firing alerts per incident opened on a changed series after its change."""
    fa_series: float
    fa_events: float
    met: str


def _firing(alerts: Sequence[Alert]) -> list[Alert]:
    return [a for a in alerts if a[2] != "resolved"]


def false_alarms_by_signal(result: KindResult) -> tuple[Counter[str], int]:
    """Firing alerts of stable stretches per signal, and the stable steps per model."""
    by_signal: Counter[str] = Counter()
    stable_steps = 0
    for s in result.series:
        end = s.length if s.change is None else s.change
        by_signal.update(a[1] for a in _firing(s.alerts) if a[0] < end)
        stable_steps += end
    return by_signal, stable_steps


def score(result: KindResult) -> list[Row]:
    kind = result.kind
    by_signal, stable_steps = false_alarms_by_signal(result)
    false_alarms = sum(by_signal.values())
    fa_events = 1e4 * false_alarms / stable_steps if stable_steps else math.nan
    fa_series = fa_events / result.watched
    rows: list[Row] = []
    for effect in kind.effects:
        changed = [s for s in result.series if s.effect == effect]
        delays: list[int] = []
        late = 0
        firing = incidents = 0
        for s in changed:
            assert s.change is not None
            after = [a for a in _firing(s.alerts) if a[0] >= s.change]
            hit = next((a for a in after if a[1] in kind.signals), None)
            if hit is not None and hit[0] - s.change < MARGIN:
                delays.append(hit[0] - s.change)
            elif hit is not None:
                late += 1
            firing += len(after)
            incidents += len({a[3] for a in after})
        recall = len(delays) / len(changed) if changed else None
        per_incident = firing / incidents if incidents else None
        target = math.isclose(effect, kind.target)
        met = ""
        if target:
            ok = (
                (recall or 0.0) >= TARGET_RECALL
                and fa_series <= TARGET_FA_PER_10K
                and (per_incident or 1.0) <= 1.0
            )
            met = "met" if ok else "MISSED"
        rows.append(
            Row(
                kind=kind.name,
                effect=kind.unit.format(effect=effect, rate=0.08 + effect)
                + (" (target)" if target else ""),
                series=len(changed),
                recall=recall,
                median_delay=float(statistics.median(delays)) if delays else None,
                late=late,
                per_incident=per_incident,
                fa_series=fa_series,
                fa_events=fa_events,
                met=met,
            )
        )
    return rows


def _fmt(value: float | None, spec: str) -> str:
    return (
        "-"
        if value is None or (isinstance(value, float) and math.isnan(value))
        else format(value, spec)
    )


HEADERS = [
    "kind",
    "change",
    "series",
    f"recall ≤{MARGIN}",
    "median delay",
    "late",
    "alerts / incident",
    "FA / 10k obs / series",
    "FA / 10k events",
    "target",
]


def _table(rows: Sequence[Row]) -> str:
    return markdown_table(
        HEADERS,
        [
            [
                r.kind,
                r.effect,
                r.series,
                _fmt(r.recall, ".2f"),
                _fmt(r.median_delay, ".0f"),
                r.late,
                _fmt(r.per_incident, ".2f"),
                _fmt(r.fa_series, ".2f"),
                _fmt(r.fa_events, ".2f"),
                r.met,
            ]
            for r in rows
        ],
    )


def verdicts(rows: Sequence[Row]) -> list[str]:
    """``kind: met|MISSED`` per kind (its target row), then ``overall: met|MISSED``."""
    lines: list[str] = []
    kinds = list(dict.fromkeys(r.kind for r in rows))
    overall = True
    for kind in kinds:
        targets = [r for r in rows if r.kind == kind and r.met]
        ok = bool(targets) and all(r.met == "met" for r in targets)
        overall &= ok
        lines.append(f"{kind}: {'met' if ok else 'MISSED'}")
    lines.append(
        f"overall ({len(kinds)} kinds): {'met' if overall and kinds else 'MISSED'} "
        f"(recall >= {TARGET_RECALL} within {MARGIN} observations, <= {TARGET_FA_PER_10K} "
        "false alarms per 10,000 observations per series, 1 alert per incident)"
    )
    return lines


def report(rows: Sequence[Row], header: Sequence[str], notes: Sequence[str]) -> str:
    """The printed report: ``header`` lines, the table, ``notes``, the verdicts."""
    return "\n".join([*header, "", _table(rows), "", *notes, "", *verdicts(rows)])


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies series counts")
    parser.add_argument("--kinds", default=",".join(KINDS), help="comma-separated kinds")
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--reps", type=int, default=20, help="changed series per effect size")
    parser.add_argument("--stable", type=int, default=10, help="stable series per kind")
    parser.add_argument("--stable-length", type=int, default=20_000)
    parser.add_argument("--change-at", type=int, default=4_000)
    parser.add_argument("--after", type=int, default=1_500)
    parser.add_argument("--save", metavar="FILE", help="also write the report's data as JSON")
    parser.add_argument(
        "--combine",
        nargs="+",
        metavar="FILE",
        help="run nothing: print one report of runs saved with --save",
    )
    args = parser.parse_args(argv)
    if args.combine:
        saved = [orjson.loads(Path(f).read_bytes()) for f in args.combine]
        print(
            report(
                [Row(**r) for doc in saved for r in doc["rows"]],
                [line for doc in saved for line in doc["header"]],
                [line for doc in saved for line in doc["notes"]],
            )
        )
        return
    reps = max(1, round(args.reps * args.scale))
    stable = max(1, round(args.stable * args.scale))
    rows: list[Row] = []
    timing: list[str] = []
    noisy: list[str] = []
    for name in args.kinds.split(","):
        result = run_kind(
            KINDS[name.strip()],
            reps=reps,
            stable=stable,
            stable_length=args.stable_length,
            change_at=args.change_at,
            after=args.after,
            seed=args.seed,
        )
        rows.extend(score(result))
        by_signal, steps = false_alarms_by_signal(result)
        noisy.extend(
            f"false alarms {name} {signal}: {count} in {steps:,} stable observations"
            for signal, count in sorted(by_signal.items())
        )
        if not by_signal:
            noisy.append(f"false alarms {name}: none in {steps:,} stable observations")
        timing.append(
            f"{name}: {result.events:,} events in {result.seconds:.1f}s, "
            f"{result.watched} watched series per model"
        )
    info = machine_info()
    header = [
        f"machine: {info['cpu']}, {info['nproc']} cores, load {info['load (1 min)']}",
        f"{args.kinds}: {reps} changed series per effect (change at observation "
        f"{args.change_at:,}), {stable} stable series of {args.stable_length:,} observations "
        f"per kind; seed {args.seed}",
        *timing,
    ]
    if args.save:
        doc = {"header": header, "notes": noisy, "rows": [asdict(r) for r in rows]}
        Path(args.save).write_bytes(orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY))
    print(report(rows, header, noisy))


if __name__ == "__main__":
    main()
