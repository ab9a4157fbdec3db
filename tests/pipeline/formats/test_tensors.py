"""V1 rows and V2 tensors -> features and predictions (pipeline.formats.tensors)."""

from __future__ import annotations

import pytest

from pipeline.errors import DecodeError
from pipeline.formats.tensors import (
    Naming,
    feature_rows,
    prediction_rows,
    v1_feature_rows,
    v1_prediction_rows,
    v2_tensors,
)

IRIS = Naming(features=("sl", "sw", "pl", "pw"), classes=("setosa", "versicolor", "virginica"))


class TestV1:
    def test_positional_instances_take_the_configured_names(self) -> None:
        rows = v1_feature_rows([[6.8, 2.8, 4.8, 1.4], [6, 3.4, 4.5, 1.6]], IRIS)
        assert rows == [
            {"sl": 6.8, "sw": 2.8, "pl": 4.8, "pw": 1.4},
            {"sl": 6.0, "sw": 3.4, "pl": 4.5, "pw": 1.6},
        ]

    def test_positional_instances_without_names(self) -> None:
        assert v1_feature_rows([[1, "a"]], Naming()) == [{"x0": 1.0, "x1": "a"}]

    def test_object_instances_name_themselves(self) -> None:
        assert v1_feature_rows([{"age": 3, "country": "FR"}], IRIS) == [
            {"age": 3.0, "country": "FR"}
        ]

    def test_a_length_mismatch_is_named(self) -> None:
        with pytest.raises(DecodeError, match=r"instances\[0\]: 3 values, 4 feature names"):
            v1_feature_rows([[1, 2, 3]], IRIS)

    def test_class_indices_and_probabilities(self) -> None:
        assert v1_prediction_rows([1, 2], IRIS) == [
            {"prediction": "versicolor", "probabilities": None, "confidence": None},
            {"prediction": "virginica", "probabilities": None, "confidence": None},
        ]
        (row,) = v1_prediction_rows([[0.1, 0.7, 0.2]], IRIS)
        assert row == {
            "prediction": "versicolor",
            "probabilities": {"setosa": 0.1, "versicolor": 0.7, "virginica": 0.2},
            "confidence": 0.7,
        }

    def test_a_regression_value_stays_a_number(self) -> None:
        assert v1_prediction_rows([3.25], Naming())[0]["prediction"] == 3.25

    def test_objects_are_refused(self) -> None:
        with pytest.raises(DecodeError, match="objects are not read"):
            v1_prediction_rows([{"label": 1}], IRIS)


class TestV2:
    def test_one_wide_tensor_takes_the_configured_names(self) -> None:
        tensors = v2_tensors(
            [
                {
                    "name": "input-0",
                    "shape": [2, 4],
                    "datatype": "FP32",
                    "data": [[1, 2, 3, 4], [5, 6, 7, 8]],
                }
            ],
            "inputs",
        )
        assert feature_rows(tensors, IRIS)[1] == {"sl": 5.0, "sw": 6.0, "pl": 7.0, "pw": 8.0}
        assert list(feature_rows(tensors, Naming())[0]) == [
            "input-0_0",
            "input-0_1",
            "input-0_2",
            "input-0_3",
        ]

    def test_column_tensors_are_named_after_themselves_and_images_are_left_out(self) -> None:
        tensors = v2_tensors(
            [
                {"name": "age", "shape": [2], "datatype": "INT64", "data": [30, 40]},
                {"name": "country", "shape": [2, 1], "datatype": "BYTES", "data": ["FR", "DE"]},
                {"name": "image", "shape": [2, 1, 2], "datatype": "FP32", "data": [0, 0, 0, 0]},
            ],
            "inputs",
        )
        assert feature_rows(tensors, Naming()) == [
            {"age": 30.0, "country": "FR"},
            {"age": 40.0, "country": "DE"},
        ]

    def test_prediction_and_probability_outputs(self) -> None:
        tensors = v2_tensors(
            [
                {"name": "predict", "shape": [1], "datatype": "INT64", "data": [2]},
                {
                    "name": "predict_proba",
                    "shape": [1, 3],
                    "datatype": "FP64",
                    "data": [0.1, 0.2, 0.7],
                },
            ],
            "outputs",
        )
        (row,) = prediction_rows(tensors, IRIS)
        assert row["prediction"] == "virginica" and row["confidence"] == 0.7

    def test_named_outputs_win(self) -> None:
        tensors = v2_tensors(
            [
                {"name": "a", "shape": [1], "datatype": "FP64", "data": [5.0]},
                {"name": "b", "shape": [1], "datatype": "FP64", "data": [7.0]},
            ],
            "outputs",
        )
        assert prediction_rows(tensors, Naming(prediction_output="b"))[0]["prediction"] == 7.0

    @pytest.mark.parametrize(
        ("tensor", "message"),
        [
            (
                {"name": "x", "shape": [2, 2], "datatype": "FP32", "data": [1, 2, 3]},
                "holds 3 values",
            ),
            ({"name": "x", "shape": "2", "datatype": "FP32", "data": [1]}, "list of integers"),
            ({"shape": [1], "datatype": "FP32", "data": [1]}, "name and datatype"),
        ],
    )
    def test_malformed_tensors_are_named(self, tensor: dict[str, object], message: str) -> None:
        with pytest.raises(DecodeError, match=message):
            v2_tensors([tensor], "inputs")

    def test_disagreeing_batch_sizes(self) -> None:
        tensors = v2_tensors(
            [
                {"name": "a", "shape": [1], "datatype": "FP64", "data": [1]},
                {"name": "b", "shape": [2], "datatype": "FP64", "data": [1, 2]},
            ],
            "inputs",
        )
        with pytest.raises(DecodeError, match="disagree on the batch size"):
            feature_rows(tensors, Naming())
