import logging

import azure.functions as func

from shared.http import endpoint
from shared.logs import RequestIdFilter, current_request_id

log = logging.getLogger("tests.logs")


def test_every_log_line_of_a_request_carries_its_id(caplog):
    caplog.handler.addFilter(RequestIdFilter())

    @endpoint
    def handler(req):
        log.info("inside the request")
        return func.HttpResponse("ok")

    with caplog.at_level(logging.INFO, logger="tests.logs"):
        handler(func.HttpRequest(method="GET", url="http://x/api/y", headers={"x-request-id": "abc-123"}, body=b""))
        log.info("after the request")
    inside, after = [r for r in caplog.records if r.name == "tests.logs"]
    assert inside.request_id == "abc-123"
    assert after.request_id == "-"
    assert current_request_id() == "-"


def test_json_lines_carry_time_level_logger_request_id_and_message():
    import json

    from shared.logs import JsonFormatter, request_context

    record = logging.LogRecord("shared.graph", logging.INFO, __file__, 1, "graph %s -> %s", ("GET", 200), None)
    with request_context("req-7"):
        RequestIdFilter().filter(record)
    entry = json.loads(JsonFormatter().format(record))
    assert entry["requestId"] == "req-7"
    assert entry["message"] == "graph GET -> 200"
    assert (entry["level"], entry["logger"]) == ("INFO", "shared.graph")
    assert entry["time"].endswith("Z") and "T" in entry["time"]
