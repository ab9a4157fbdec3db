"""CloudEvents read from Kafka records made by the CloudEvents SDK (another client)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from cloudevents.core.bindings.kafka import to_binary, to_structured
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent as SdkEvent

from pipeline.core.records import Record
from pipeline.errors import DecodeError
from pipeline.events import PredictionEvent
from pipeline.formats.cloudevent import read_cloudevent
from pipeline.formats.kserve import REQUEST_TYPE
from pipeline.formats.samples import kserve_records

ATTRIBUTES = {
    "id": "689b15e7-84a1-4e89-9805-20809efc216d",
    "source": "http://localhost:9081/",
    "type": REQUEST_TYPE,
    "specversion": "1.0",
    "time": datetime(2026, 1, 1, 0, 0, 1, 500000, tzinfo=UTC),
    "datacontenttype": "application/json",
    "inferenceservicename": "sklearn-iris",
    "namespace": "default",
    "component": "predictor",
    "endpoint": "",
}
BODY = b'{"instances": [[6.8, 2.8, 4.8, 1.4]]}'


def _record(message: object) -> Record:
    headers = tuple(message.headers.items())  # type: ignore[attr-defined]
    return Record("t", 0, 0, message.value, headers=headers)  # type: ignore[attr-defined]


class TestReadCloudEvent:
    def test_binary_mode_from_the_sdk(self) -> None:
        event = read_cloudevent(_record(to_binary(SdkEvent(ATTRIBUTES, BODY), JSONFormat())))
        assert event.id == ATTRIBUTES["id"]
        assert event.type == REQUEST_TYPE
        assert event.attributes["inferenceservicename"] == "sklearn-iris"
        assert event.attributes["endpoint"] == ""
        assert event.time_micros() == int(ATTRIBUTES["time"].timestamp() * 1_000_000)  # type: ignore[attr-defined]
        assert event.json_data() == {"instances": [[6.8, 2.8, 4.8, 1.4]]}

    @pytest.mark.parametrize("data", [BODY, {"instances": [[6.8, 2.8, 4.8, 1.4]]}])
    def test_structured_mode_from_the_sdk(self, data: object) -> None:
        message = to_structured(SdkEvent(ATTRIBUTES, data), JSONFormat())  # type: ignore[arg-type]
        event = read_cloudevent(_record(message))
        assert event.attributes["inferenceservicename"] == "sklearn-iris"
        assert event.json_data() == {"instances": [[6.8, 2.8, 4.8, 1.4]]}

    def test_missing_attributes_are_named(self) -> None:
        record = Record("t", 0, 0, BODY, headers=(("ce_id", b"x"), ("ce_type", b"y")))
        with pytest.raises(DecodeError, match="missing specversion, source") as info:
            read_cloudevent(record)
        assert info.value.reason == "malformed_cloudevent"

    def test_bad_data_is_malformed_json(self) -> None:
        message = to_binary(SdkEvent(ATTRIBUTES, b"{not json"), JSONFormat())
        with pytest.raises(DecodeError) as info:
            read_cloudevent(_record(message)).json_data()
        assert info.value.reason == "malformed_json"


class TestSamplesMatchTheSdk:
    def test_the_demo_s_headers_are_the_sdk_s_binary_mode(self) -> None:
        event = PredictionEvent(
            event_id="e",
            model_id="iris",
            model_version="1",
            timestamp=datetime(2026, 1, 1, tzinfo=UTC),
            request_id="req-1",
            prediction="setosa",
            features={"a": 1.0},
        )
        request, _ = kserve_records(event, features=["a"], classes=["setosa"])
        attributes = {
            "id": "req-1",
            "source": "http://localhost:9081/",
            "type": REQUEST_TYPE,
            "specversion": "1.0",
            "time": datetime(2026, 1, 1, tzinfo=UTC),
            "datacontenttype": "application/json",
            "inferenceservicename": "iris",
            "namespace": "default",
            "component": "predictor",
            "endpoint": "",
            "metadata": "{}",
        }
        sdk = to_binary(SdkEvent(attributes, request.value), JSONFormat())
        assert dict(request.headers) == sdk.headers
        assert request.value == sdk.value
