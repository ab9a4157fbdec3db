"""A FastAPI inference service that reports every prediction to driftline.

    pip install driftline fastapi uvicorn
    DRIFTLINE_BOOTSTRAP_SERVERS=127.0.0.1:39092 uvicorn emit_fastapi:app --port 8000
    curl -s localhost:8000/predict -H 'content-type: application/json' \\
        -H 'x-request-id: r-1' -d '{"amount": 42.5, "age": 37, "country": "FR"}'

The emitter is created in the lifespan (one per worker process, after any fork) and
closed at shutdown, which sends what is still queued. ``emitter.predict`` only appends
to an in-memory queue: the request never waits for Kafka and never fails because of it
(see pipeline/emit.py; ``benchmarks/emit.py`` measures what a call costs). Labels that
arrive later are joined by ``request_id``: ``POST /label``.
"""

from __future__ import annotations

import math
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from pydantic import BaseModel

from pipeline.emit import Emitter

MODEL_ID = os.environ.get("MODEL_ID", "fraud")
MODEL_VERSION = os.environ.get("MODEL_VERSION", "1")
CLASSES = ("approve", "review", "decline")


class Transaction(BaseModel):
    amount: float
    age: float
    country: str


class Label(BaseModel):
    request_id: str
    label: str


def score(tx: Transaction) -> dict[str, float]:
    """A stand-in model: class probabilities from a softmax of three linear scores."""
    logits = (2.0 - tx.amount / 50.0, tx.amount / 100.0, tx.amount / 80.0 - tx.age / 40.0)
    top = max(logits)
    weights = [math.exp(x - top) for x in logits]
    total = sum(weights)
    return {c: w / total for c, w in zip(CLASSES, weights, strict=True)}


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.emitter = Emitter(
        os.environ.get("DRIFTLINE_BOOTSTRAP_SERVERS", "127.0.0.1:39092"),
        model_id=MODEL_ID,
        model_version=MODEL_VERSION,
        topics={
            "prediction": os.environ.get("DRIFTLINE_PREDICTIONS_TOPIC", "driftline.predictions"),
            "label": os.environ.get("DRIFTLINE_LABELS_TOPIC", "driftline.labels"),
        },
    )
    yield
    app.state.emitter.close()


app = FastAPI(lifespan=lifespan)


@app.post("/predict")
def predict(tx: Transaction, request: Request) -> dict[str, object]:
    probabilities = score(tx)
    label = max(probabilities, key=probabilities.__getitem__)
    request.app.state.emitter.predict(
        label,
        probabilities=probabilities,
        confidence=probabilities[label],
        features=tx.model_dump(),
        request_id=request.headers.get("x-request-id"),
    )
    return {"label": label, "probabilities": probabilities}


@app.post("/label")
def label(body: Label, request: Request) -> dict[str, bool]:
    return {"queued": request.app.state.emitter.label(body.request_id, body.label)}


@app.get("/emitter")
def emitter_stats(request: Request) -> dict[str, object]:
    """What the emitter handed to Kafka, what is queued, what it dropped and why."""
    stats: dict[str, object] = request.app.state.emitter.stats()
    return stats
