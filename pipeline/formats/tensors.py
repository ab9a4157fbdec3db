"""Open Inference Protocol (V2) tensors and KServe V1 rows -> per-row features and predictions.

Both serving stacks batch: one request carries ``n`` rows (V1 ``instances``, the first
dimension of every V2 tensor) and its response ``n`` answers. This module turns each
side into ``n`` plain rows that :mod:`pipeline.formats.pairing` can keep in a snapshot
and join: a request row is ``{feature: value}``, a response row is
``{"prediction": ..., "probabilities": {...} | None, "confidence": ... | None}``.

Naming follows what the payload says first and what the config says second:

- a V2 tensor of shape ``[n]`` or ``[n, 1]`` is one feature named after the tensor
  (the pandas-codec layout MLServer and KServe use: one tensor per column);
- a tensor of shape ``[n, k]`` is ``k`` features, named by ``features`` from the
  config when it is the only such tensor and the lengths match, else ``<tensor>_<j>``;
- V1 instances that are objects name their features; positional ones take
  ``features`` from the config, else ``x0, x1, ...``;
- tensors of rank 3 or more (images, sequences) are not tabular features and are
  left out.

A response's prediction comes from the output named ``prediction_output`` (else the
first one with one value per row), probabilities from ``probabilities_output`` (else
the first with several values per row), named by ``classes`` (else ``"0", "1", ...``);
without a prediction tensor the most probable class is the prediction, and the
highest probability is the confidence. An integer prediction that indexes
``classes`` becomes that class's name.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from pipeline.errors import DecodeError

__all__ = [
    "Naming",
    "Tensor",
    "feature_rows",
    "prediction_rows",
    "v1_feature_rows",
    "v1_prediction_rows",
    "v2_tensors",
]

Scalar = float | int | str | bool | None
Row = dict[str, Any]

_NUMERIC: Final = frozenset(
    {"BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64"}
    | {"FP16", "FP32", "FP64", "BF16"}
)


@dataclass(frozen=True, slots=True)
class Tensor:
    """One named tensor, its data flattened in row-major order."""

    name: str
    datatype: str
    shape: tuple[int, ...]
    data: list[Scalar]

    @property
    def rows(self) -> int:
        return self.shape[0] if self.shape else 1

    @property
    def width(self) -> int:
        """Values per row (1 for a column tensor)."""
        width = 1
        for dim in self.shape[1:]:
            width *= dim
        return width


@dataclass(frozen=True, slots=True)
class Naming:
    """What the config adds to the payload's own names."""

    features: tuple[str, ...] | None = None
    classes: tuple[str, ...] | None = None
    prediction_output: str | None = None
    probabilities_output: str | None = None


def _flatten(data: Any, out: list[Scalar]) -> None:
    if isinstance(data, list):
        for item in data:
            _flatten(item, out)
    else:
        out.append(data)


def _check_size(tensor: Tensor) -> Tensor:
    expected = 1
    for dim in tensor.shape:
        if dim < 0:
            raise DecodeError(
                "schema_violation", f"tensor {tensor.name!r} has shape {tensor.shape}"
            )
        expected *= dim
    if expected != len(tensor.data):
        raise DecodeError(
            "schema_violation",
            f"tensor {tensor.name!r} of shape {list(tensor.shape)} holds {len(tensor.data)} values",
        )
    return tensor


def v2_tensors(items: Any, side: str) -> list[Tensor]:
    """The ``inputs`` or ``outputs`` list of a V2 JSON body as tensors."""
    if not isinstance(items, list) or not items:
        raise DecodeError("schema_violation", f"{side}: expected a non-empty list of tensors")
    tensors = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise DecodeError("schema_violation", f"{side}[{i}]: expected an object")
        name, datatype, shape = item.get("name"), item.get("datatype"), item.get("shape")
        if not isinstance(name, str) or not isinstance(datatype, str):
            raise DecodeError("schema_violation", f"{side}[{i}]: name and datatype are required")
        if not isinstance(shape, list) or not all(type(d) is int for d in shape):
            raise DecodeError("schema_violation", f"{side}[{i}].shape: expected a list of integers")
        flat: list[Scalar] = []
        _flatten(item.get("data"), flat)
        tensors.append(_check_size(Tensor(name, datatype.upper(), tuple(shape), flat)))
    return tensors


def _scalar(value: Scalar, where: str) -> Scalar:
    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, (int, float)):
        return float(value)
    raise DecodeError("schema_violation", f"{where}: expected a number, string, bool or null")


def _row_count(tensors: Sequence[Tensor], side: str) -> int:
    counts = {t.rows for t in tensors}
    if len(counts) != 1:
        raise DecodeError("schema_violation", f"{side}: tensors disagree on the batch size")
    return counts.pop()


def feature_rows(tensors: Sequence[Tensor], naming: Naming) -> list[Row]:
    """One ``{feature: value}`` per row of the request tensors."""
    n = _row_count(tensors, "inputs")
    tabular = [t for t in tensors if len(t.shape) <= 2]
    wide = [t for t in tabular if t.width > 1]
    rows: list[Row] = [{} for _ in range(n)]
    for tensor in tabular:
        width = tensor.width
        if width == 1:
            names = [tensor.name]
        elif naming.features is not None and len(wide) == 1 and len(naming.features) == width:
            names = list(naming.features)
        else:
            names = [f"{tensor.name}_{j}" for j in range(width)]
        data = tensor.data
        for r in range(n):
            row = rows[r]
            base = r * width
            for j, name in enumerate(names):
                row[name] = _scalar(data[base + j], f"inputs.{tensor.name}")
    return rows


def _class_names(width: int, naming: Naming) -> list[str]:
    if naming.classes is not None and len(naming.classes) == width:
        return list(naming.classes)
    return [str(j) for j in range(width)]


def _label(value: Scalar, naming: Naming) -> Scalar:
    """An integer class index names its class when ``classes`` are configured."""
    if (
        naming.classes is not None
        and isinstance(value, (int, float))
        and not isinstance(value, bool)
        and float(value).is_integer()
        and 0 <= int(value) < len(naming.classes)
    ):
        return naming.classes[int(value)]
    return value


def _answer(prediction: Scalar, probabilities: list[float] | None, naming: Naming) -> Row:
    probs = None
    confidence = None
    if probabilities is not None:
        names = _class_names(len(probabilities), naming)
        probs = dict(zip(names, probabilities, strict=True))
        best = max(range(len(probabilities)), key=probabilities.__getitem__)
        confidence = probabilities[best]
        if prediction is None:
            prediction = names[best]
    if prediction is None:
        raise DecodeError("schema_violation", "outputs: no prediction in the response")
    return {
        "prediction": _label(prediction, naming),
        "probabilities": probs,
        "confidence": confidence,
    }


def _pick(tensors: Sequence[Tensor], name: str | None, wide: bool) -> Tensor | None:
    if name is not None:
        for tensor in tensors:
            if tensor.name == name:
                return tensor
        return None
    for tensor in tensors:
        if len(tensor.shape) <= 2 and (tensor.width > 1) == wide:
            return tensor
    return None


def prediction_rows(tensors: Sequence[Tensor], naming: Naming) -> list[Row]:
    """One answer per row of the response tensors."""
    n = _row_count(tensors, "outputs")
    label = _pick(tensors, naming.prediction_output, wide=False)
    probs = _pick(tensors, naming.probabilities_output, wide=True)
    if label is None and probs is None:
        raise DecodeError(
            "schema_violation",
            "outputs: no tensor holds a prediction or probabilities "
            f"(got {', '.join(t.name for t in tensors)})",
        )
    rows = []
    for r in range(n):
        prediction = None
        if label is not None:
            if label.width != 1:
                raise DecodeError(
                    "schema_violation", f"outputs.{label.name}: expected one value per row"
                )
            prediction = _scalar(label.data[r], f"outputs.{label.name}")
        probabilities = None
        if probs is not None:
            w = probs.width
            values = [_scalar(v, f"outputs.{probs.name}") for v in probs.data[r * w : (r + 1) * w]]
            if not all(isinstance(v, float) for v in values):
                raise DecodeError("schema_violation", f"outputs.{probs.name}: expected numbers")
            probabilities = [float(v) for v in values]  # type: ignore[arg-type]
        rows.append(_answer(prediction, probabilities, naming))
    return rows


# ------------------------------------------------------------------ KServe V1
def v1_feature_rows(instances: Any, naming: Naming) -> list[Row]:
    """``{"instances": [...]}``: objects name their features, lists are positional."""
    if not isinstance(instances, list) or not instances:
        raise DecodeError("schema_violation", "instances: expected a non-empty list")
    rows: list[Row] = []
    for i, instance in enumerate(instances):
        where = f"instances[{i}]"
        if isinstance(instance, dict):
            rows.append({str(k): _scalar(v, f"{where}.{k}") for k, v in instance.items()})
            continue
        values = instance if isinstance(instance, list) else [instance]
        if naming.features is not None:
            if len(naming.features) != len(values):
                raise DecodeError(
                    "schema_violation",
                    f"{where}: {len(values)} values, {len(naming.features)} feature names configured",
                )
            names: Sequence[str] = naming.features
        else:
            names = [f"x{j}" for j in range(len(values))]
        rows.append({name: _scalar(v, where) for name, v in zip(names, values, strict=True)})
    return rows


def v1_prediction_rows(predictions: Any, naming: Naming) -> list[Row]:
    """``{"predictions": [...]}``: a scalar per row is the prediction, a list the
    class probabilities."""
    if not isinstance(predictions, list) or not predictions:
        raise DecodeError("schema_violation", "predictions: expected a non-empty list")
    rows = []
    for i, item in enumerate(predictions):
        where = f"predictions[{i}]"
        if isinstance(item, list):
            values = [_scalar(v, where) for v in item]
            if not values or not all(isinstance(v, float) for v in values):
                raise DecodeError("schema_violation", f"{where}: expected class probabilities")
            rows.append(_answer(None, values, naming))  # type: ignore[arg-type]
        elif isinstance(item, dict):
            raise DecodeError("schema_violation", f"{where}: objects are not read as predictions")
        else:
            rows.append(_answer(_scalar(item, where), None, naming))
    return rows
