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
