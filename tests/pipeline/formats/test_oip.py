"""Open Inference Protocol protobuf, typed and raw contents (pipeline.formats.oip)."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from pipeline.errors import DecodeError
from pipeline.formats import oip
from pipeline.formats.oip.v2_dataplane_pb2 import (
    InferTensorContents,
    ModelInferRequest,
    ModelInferResponse,
)


def _request() -> ModelInferRequest:
    request = ModelInferRequest(model_name="iris", id="r1")
    request.inputs.add(
        name="input-0",
        datatype="FP32",
        shape=[2, 2],
        contents=InferTensorContents(fp32_contents=[1.5, 2.5, 3.5, 4.5]),
    )
    request.inputs.add(
        name="country",
        datatype="BYTES",
        shape=[2],
        contents=InferTensorContents(bytes_contents=[b"FR", b"DE"]),
    )
    return request


class TestTensors:
    def test_typed_contents(self) -> None:
        parsed = oip.parse_request(_request().SerializeToString())
        tensors = oip.request_tensors(parsed)
        assert [(t.name, t.datatype, t.shape, t.data) for t in tensors] == [
            ("input-0", "FP32", (2, 2), [1.5, 2.5, 3.5, 4.5]),
            ("country", "BYTES", (2,), ["FR", "DE"]),
        ]

    def test_raw_contents_little_endian_and_length_prefixed_bytes(self) -> None:
        response = ModelInferResponse(model_name="iris", model_version="3")
        response.outputs.add(name="predict_proba", datatype="FP64", shape=[1, 3])
        response.outputs.add(name="label", datatype="BYTES", shape=[1])
        response.outputs.add(name="count", datatype="INT32", shape=[1])
        response.raw_output_contents.append(np.array([0.1, 0.2, 0.7], dtype="<f8").tobytes())
        response.raw_output_contents.append(struct.pack("<I", 9) + b"virginica")
        response.raw_output_contents.append(np.array([7], dtype="<i4").tobytes())
        parsed = oip.parse_response(response.SerializeToString())
        assert parsed.model_version == "3"
        assert [t.data for t in oip.response_tensors(parsed)] == [
            [0.1, 0.2, 0.7],
            ["virginica"],
            [7],
        ]

    def test_truncated_raw_bytes(self) -> None:
        response = ModelInferResponse()
        response.outputs.add(name="label", datatype="BYTES", shape=[1])
        response.raw_output_contents.append(struct.pack("<I", 9) + b"virg")
        with pytest.raises(DecodeError, match="truncated") as info:
            oip.response_tensors(response)
        assert info.value.reason == "malformed_protobuf"

    def test_a_shape_that_does_not_hold_the_values(self) -> None:
        request = ModelInferRequest()
        request.inputs.add(
            name="x", datatype="FP64", shape=[3], contents=InferTensorContents(fp64_contents=[1.0])
        )
        with pytest.raises(DecodeError, match=r"shape \[3\] holds 1 values"):
            oip.request_tensors(request)

    def test_garbage_is_malformed_protobuf(self) -> None:
        with pytest.raises(DecodeError) as info:
            oip.parse_request(b"\xff\xff\xff\xff")
        assert info.value.reason == "malformed_protobuf"

    def test_the_classes_live_in_a_private_pool(self) -> None:
        from google.protobuf import descriptor_pool

        with pytest.raises(KeyError):
            descriptor_pool.Default().FindMessageTypeByName("inference.ModelInferRequest")
