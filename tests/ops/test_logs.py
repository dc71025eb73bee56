"""Log settings: JSON lines with context ids, the access log by route template, request ids."""

from __future__ import annotations

import json
import logging

import pytest

from tests import helpers
from tresen.logs import CONVERSATION_ID, WORKSPACE_ID, JsonFormatter, TextFormatter, setup_logging
from tresen.runtime import Runtime


def _record(message: str) -> logging.LogRecord:
    record = logging.LogRecord("tresen.test", logging.WARNING, __file__, 1, message, (), None)
    for name, var in (("workspace_id", WORKSPACE_ID), ("conversation_id", CONVERSATION_ID)):
        setattr(record, name, var.get())
    record.request_id = None
    return record


def test_json_and_text_lines_carry_the_context_ids() -> None:
    workspace, conversation = WORKSPACE_ID.set("ws1"), CONVERSATION_ID.set("conv1")
    try:
        line = json.loads(JsonFormatter().format(_record("job j1 failed")))
        text = TextFormatter().format(_record("job j1 failed"))
    finally:
        WORKSPACE_ID.reset(workspace)
        CONVERSATION_ID.reset(conversation)
    assert line["message"] == "job j1 failed" and line["level"] == "WARNING"
    assert line["workspace_id"] == "ws1" and line["conversation_id"] == "conv1"
    assert "request_id" not in line
    assert text.endswith("tresen.test: job j1 failed [workspace=ws1 conversation=conv1]")


def test_bad_level_or_format_is_refused() -> None:
    with pytest.raises(ValueError, match="log format must be text or json"):
        setup_logging("INFO", "xml")
    with pytest.raises(ValueError, match="log level"):
        setup_logging("LOUD", "text")


async def test_access_log_names_the_route_template_and_request_ids_round_trip(
    runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    runtime.settings = runtime.settings.with_overrides(access_log=True)
    with caplog.at_level(logging.INFO, logger="tresen.access"):
        async with helpers.client_for(runtime) as client:
            response = await client.get(
                "/api/v1/conversations/01SECRETISH", headers={"X-Request-ID": "abcdef123456"}
            )
            fresh = await client.get("/healthz")
    assert response.headers["x-request-id"] == "abcdef123456"
    assert len(fresh.headers["x-request-id"]) == 16
    lines = [r.getMessage() for r in caplog.records if r.name == "tresen.access"]
    assert lines[0].startswith("GET /api/v1/conversations/{conversation_id} 401 ")
    assert "01SECRETISH" not in caplog.text
