"""FastAPI's native OpenTelemetry: on only when the operator configured OpenTelemetry."""

from __future__ import annotations

import os

import pytest

from webhookd.app import _telemetry


@pytest.mark.parametrize(
    ("variables", "enabled"),
    [
        ({}, False),
        ({"OTEL_SERVICE_NAME": "webhookd"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, True),
        ({"FASTAPI_OTEL_AUTO_CONFIGURE": "true"}, True),
        ({"WEBHOOKD_OTEL": "1"}, False),  # not an OpenTelemetry variable
    ],
)
def test_native_telemetry_follows_the_otel_environment(
    monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], enabled: bool
) -> None:
    for name in list(os.environ):
        if name.startswith("OTEL_") or name == "FASTAPI_OTEL_AUTO_CONFIGURE":
            monkeypatch.delenv(name)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    config = _telemetry()
    if enabled:
        assert config is None  # FastAPI's defaults: what OpenTelemetry is configured to do
    else:
        assert config == {"tracing": False, "metrics": False, "logs": False}
