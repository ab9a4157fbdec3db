"""The ``inputs`` section of the config: a source topic and the format it carries.

::

    inputs:
      - {topic: kserve.iris, format: kserve-cloudevents, features: [sl, sw, pl, pw],
         classes: [setosa, versicolor, virginica]}
      - {format: seldon-oip, model: iris, namespace: seldon-mesh}   # both of its topics
      - {topic: team-b.predictions, format: driftline, kind: prediction}

Every record of such a topic is decoded by its format into driftline events before
the core sees it; the four topics of ``topics`` keep carrying driftline's own JSON.
"""

from __future__ import annotations

import string
from typing import Annotated, Literal

from pydantic import Field, field_validator

from pipeline.config_types import Duration, Strict

__all__ = [
    "DriftlineInput",
    "InputSpec",
    "KServeInput",
    "SeldonInput",
    "TabularNaming",
]


_Topic = Annotated[str, Field(min_length=1, max_length=249, pattern=r"^[A-Za-z0-9._-]+$")]


class DriftlineInput(Strict):
    """Another topic of driftline's own JSON events."""

    format: Literal["driftline"]
    topic: _Topic
    kind: Literal["feature", "prediction", "label", "training"] | None = None
    """The event kind every record has; None reads each record's ``schema`` tag."""

    def topics(self) -> list[str]:
        return [self.topic]


class TabularNaming(Strict):
    """How request and response tensors become features and a prediction
    (see :mod:`pipeline.formats.tensors`)."""

    features: list[str] | None = None
    """Names of positional features (V1 lists, a V2 tensor of shape [n, k])."""
    classes: list[str] | None = None
    """Names of the probability columns; an integer prediction indexes them."""
    prediction_output: str | None = None
    """The response tensor holding the prediction (default: the first one with one
    value per row)."""
    probabilities_output: str | None = None
    """The response tensor holding class probabilities (default: the first one with
    several values per row)."""
    model_version: str = Field("1", min_length=1)
    """The version when the response names none (V1, or an empty ``model_version``)."""
    pair_ttl: Duration = 300.0
    """How long (event time) a request waits for its response, and the reverse."""
    max_pending: int = Field(100_000, ge=1)
    """Halves waiting per partition at most; beyond that the oldest is evicted."""


class KServeInput(TabularNaming):
    """CloudEvents of KServe's inference logger, as a Knative Kafka Broker or
    KafkaSink writes them (binary content mode, or structured)."""

    format: Literal["kserve-cloudevents"]
    topic: _Topic
    model_id: str = "{inferenceservicename}"
    """The model id, from the CloudEvent's extension attributes: ``{inferenceservicename}``,
    ``{namespace}``, ``{component}``, ``{endpoint}``."""
    inference_services: list[str] | None = None
    """Read only these inference services (a broker's topic carries a whole namespace)."""
    components: list[str] = Field(default_factory=lambda: ["predictor"])
    """Read only these components (the transformer logs too, when it has a logger)."""
    logger_mode: Literal["all", "response"] = "all"
    """The InferenceService's ``logger.mode``: ``all`` pairs requests with responses;
    ``response`` (only responses are logged) makes prediction events without features
    from each response at once."""

    @field_validator("model_id")
    @classmethod
    def _known_placeholders(cls, value: str) -> str:
        allowed = {"inferenceservicename", "namespace", "component", "endpoint"}
        for _, name, _, _ in string.Formatter().parse(value):
            if name is not None and name not in allowed:
                raise ValueError(
                    f"unknown placeholder {{{name}}}; use {', '.join(sorted(allowed))}"
                )
        return value

    def topics(self) -> list[str]:
        return [self.topic]


class SeldonInput(TabularNaming):
    """A Seldon Core 2 model's inputs and outputs topics (Open Inference Protocol
    protobuf, or V2 JSON when the request was JSON)."""

    format: Literal["seldon-oip"]
    model: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9_-][A-Za-z0-9._-]*$")]
    namespace: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9._-]+$")] = "default"
    topic_prefix: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9._-]+$")] = "seldon"
    """Seldon's ``kafka.topicPrefix`` (Helm value; ``seldon`` by default)."""
    model_id: str | None = None
    """The model id in driftline (default: ``model``)."""

    @property
    def inputs_topic(self) -> str:
        return f"{self.topic_prefix}.{self.namespace}.model.{self.model}.inputs"

    @property
    def outputs_topic(self) -> str:
        return f"{self.topic_prefix}.{self.namespace}.model.{self.model}.outputs"

    def topics(self) -> list[str]:
        return [self.inputs_topic, self.outputs_topic]


InputSpec = Annotated[DriftlineInput | KServeInput | SeldonInput, Field(discriminator="format")]
