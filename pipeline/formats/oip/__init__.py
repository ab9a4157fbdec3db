"""Open Inference Protocol (V2) protobuf -> :class:`~pipeline.formats.tensors.Tensor`.

``v2_dataplane.proto`` is Seldon Core 2's published copy of the protocol (the same
messages, field for field, as KServe's ``grpc_predict_v2.proto``); ``v2_dataplane_pb2``
is generated from it by ``make proto`` and committed. A tensor's values come either
from its typed ``contents`` or, when the producer used them, from
``raw_input_contents`` / ``raw_output_contents``: little-endian, row-major, and for
``BYTES`` each element prefixed by its 4-byte little-endian length (the convention
Triton, MLServer and KServe share).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any, Final

import numpy as np
from google.protobuf.message import DecodeError as ProtobufDecodeError

from pipeline.errors import DecodeError
from pipeline.formats.oip.v2_dataplane_pb2 import (
    InferTensorContents,
    ModelInferRequest,
    ModelInferResponse,
)
from pipeline.formats.tensors import Scalar, Tensor

__all__ = [
    "ModelInferRequest",
    "ModelInferResponse",
    "parse_request",
    "parse_response",
    "request_tensors",
    "response_tensors",
]

_RAW_DTYPES: Final[dict[str, str]] = {
    "BOOL": "?",
    "UINT8": "<u1",
    "UINT16": "<u2",
    "UINT32": "<u4",
    "UINT64": "<u8",
    "INT8": "<i1",
    "INT16": "<i2",
    "INT32": "<i4",
    "INT64": "<i8",
    "FP16": "<f2",
    "FP32": "<f4",
    "FP64": "<f8",
}
_CONTENT_FIELDS: Final[dict[str, str]] = {
    "BOOL": "bool_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}


def _text(value: bytes) -> str:
    return value.decode("utf-8", "replace")


def _raw(name: str, datatype: str, raw: bytes) -> list[Scalar]:
    if datatype == "BYTES":
        out: list[Scalar] = []
        pos = 0
        while pos < len(raw):
            if pos + 4 > len(raw):
                raise DecodeError("malformed_protobuf", f"tensor {name!r}: truncated BYTES element")
            (size,) = struct.unpack_from("<I", raw, pos)
            pos += 4
            if pos + size > len(raw):
                raise DecodeError("malformed_protobuf", f"tensor {name!r}: truncated BYTES element")
            out.append(_text(raw[pos : pos + size]))
            pos += size
        return out
    dtype = _RAW_DTYPES.get(datatype)
    if dtype is None:
        raise DecodeError("schema_violation", f"tensor {name!r}: unknown datatype {datatype!r}")
    array = np.frombuffer(raw, dtype=np.dtype(dtype))
    values: list[Scalar] = array.tolist()
    return values


def _contents(name: str, datatype: str, contents: InferTensorContents) -> list[Scalar]:
    field = _CONTENT_FIELDS.get(datatype)
    if field is None:
        raise DecodeError(
            "schema_violation", f"tensor {name!r}: datatype {datatype!r} needs raw contents"
        )
    values = list(getattr(contents, field))
    if datatype == "BYTES":
        return [_text(v) for v in values]
    return values


def _tensors(items: Sequence[Any], raw: Sequence[bytes], side: str) -> list[Tensor]:
    if not items:
        raise DecodeError("schema_violation", f"{side}: no tensors")
    if raw and len(raw) != len(items):
        raise DecodeError(
            "schema_violation", f"{side}: {len(items)} tensors but {len(raw)} raw contents"
        )
    tensors = []
    for i, item in enumerate(items):
        datatype = item.datatype.upper()
        if raw:
            data = _raw(item.name, datatype, raw[i])
        else:
            data = _contents(item.name, datatype, item.contents)
        tensor = Tensor(item.name, datatype, tuple(int(d) for d in item.shape), data)
        expected = 1
        for dim in tensor.shape:
            expected *= dim
        if expected != len(data) or any(d < 0 for d in tensor.shape):
            raise DecodeError(
                "schema_violation",
                f"{side}.{item.name}: shape {list(tensor.shape)} holds {len(data)} values",
            )
        tensors.append(tensor)
    return tensors


def _parse(message: Any, value: bytes) -> Any:
    try:
        message.ParseFromString(value)
    except ProtobufDecodeError as exc:
        raise DecodeError("malformed_protobuf", f"{type(message).__name__}: {exc}") from None
    return message


def parse_request(value: bytes) -> ModelInferRequest:
    request: ModelInferRequest = _parse(ModelInferRequest(), value)
    return request


def parse_response(value: bytes) -> ModelInferResponse:
    response: ModelInferResponse = _parse(ModelInferResponse(), value)
    return response


def request_tensors(message: ModelInferRequest) -> list[Tensor]:
    return _tensors(message.inputs, message.raw_input_contents, "inputs")


def response_tensors(message: ModelInferResponse) -> list[Tensor]:
    return _tensors(message.outputs, message.raw_output_contents, "outputs")
