"""Backtests: replay history through the sidecar's code path, score it, report it.

* ``sources`` — JSONL (gzip), Parquet and Kafka-range inputs;
* ``truth`` — ground truth: the generator's truth file or annotated change points;
* ``trace`` — a pure observer of every detector update (plots and scoring);
* ``scoring`` — detections vs. truth: delays, false alarms, precision/recall/F1;
* ``report`` — a self-contained HTML report, ``png`` — the plots as PNG files;
* ``run`` — ties it together for ``driftline backtest``.
"""

from __future__ import annotations
