"""Logging set-up: JSON lines with the fields a log pipeline indexes, or plain text."""

from __future__ import annotations

import io
import json
import logging

import pytest
from opentelemetry.sdk.trace import TracerProvider

from observability import logging as log_setup
from settings import Settings


@pytest.fixture
def captured():
    """Configure logging from settings, capture what the handler writes, then restore."""
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    stream = io.StringIO()

    def configure(**fields) -> io.StringIO:
        log_setup.configure(Settings(**fields))
        [handler] = root.handlers
        assert isinstance(handler, logging.StreamHandler)
        handler.setStream(stream)  # instead of stderr, which pytest swaps between phases
        return stream

    yield configure
    root.handlers[:] = saved_handlers
    root.setLevel(saved_level)


def _lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_lines_carry_time_level_logger_and_message(captured):
    stream = captured(log_json=True, log_level="info")
    logging.getLogger("agents.intake").info("dead letter from %s: %s", "ingest.police-110",
                                            "缺少 bjsj")
    logging.getLogger("agents.intake").debug("below the level")
    [entry] = _lines(stream)
    assert entry["level"] == "INFO"
    assert entry["logger"] == "agents.intake"
    assert entry["message"] == "dead letter from ingest.police-110: 缺少 bjsj"
    assert entry["time"].startswith(("20", "19")) and "T" in entry["time"]
    assert "case_id" not in entry and "trace_id" not in entry


def test_case_id_from_extra_or_from_the_context(captured):
    stream = captured(log_json=True)
    log = logging.getLogger("agents.writer")
    log.info("applied", extra={"case_id": "C-1"})
    with log_setup.case_context("C-2"):
        log.warning("red card")
    log.info("after")
    first, second, third = _lines(stream)
    assert first["case_id"] == "C-1"
    assert second["case_id"] == "C-2" and second["level"] == "WARNING"
    assert "case_id" not in third


def test_trace_id_of_the_current_span(captured):
    stream = captured(log_json=True)
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("cases") as span:
        logging.getLogger("agents.writer").info("inside a span")
    [entry] = _lines(stream)
    assert entry["trace_id"] == format(span.get_span_context().trace_id, "032x")


def test_exceptions_stay_on_one_line(captured):
    stream = captured(log_json=True)
    try:
        raise ValueError("bad rule")
    except ValueError:
        logging.getLogger("agents.worker").exception("cannot load")
    [entry] = _lines(stream)
    assert entry["message"] == "cannot load"
    assert "ValueError: bad rule" in entry["exc"]


def test_loggers_created_before_configuration_keep_logging(captured):
    early = logging.getLogger("gridlink.test.early")
    stream = captured(log_json=True)
    early.info("still here")
    assert _lines(stream)[0]["logger"] == "gridlink.test.early"


def test_text_mode_and_level(captured):
    stream = captured(log_json=False, log_level="warning")
    logging.getLogger("api").info("hidden")
    logging.getLogger("api").warning("shown")
    text = stream.getvalue()
    assert "hidden" not in text
    assert "[WARNING] api: shown" in text
    assert not text.lstrip().startswith("{")


def test_faust_gets_the_same_configuration():
    config = log_setup.logging_config(Settings(log_json=True, log_level="debug"))
    assert config["root"] == {"level": "DEBUG", "handlers": ["gridlink"]}
    assert config["disable_existing_loggers"] is False
    assert config["formatters"]["gridlink"]["()"].endswith("JsonFormatter")


def test_access_log_lines_do_not_show_api_keys(captured):
    captured(log_json=True)
    access = logging.getLogger("uvicorn.access")  # uvicorn's access log, filtered by configure
    record = access.makeRecord(access.name, logging.INFO, __file__, 1,
                               '%s - "%s %s HTTP/%s" %d', ("127.0.0.1:5000", "GET",
                               "/board/events?key=s3cr3t-Key_1&x=1", "1.1", 200), None)
    assert access.filter(record)
    entry = json.loads(log_setup.JsonFormatter().format(record))
    assert "s3cr3t" not in entry["message"]
    assert "/board/events?key=***&x=1" in entry["message"]
