"""``GET /users/{id | userPrincipalName}/calendar`` and ``GET /me/calendar``: the default calendar
(https://learn.microsoft.com/en-us/graph/api/calendar-get), checked against Graph's CSDL type
``calendar`` (tests/support/graph-calendar-types.json), with ``$select``, the permissions of the
other calendar reads (Calendars.Read or Calendars.ReadWrite) and the application access policy.
"""

from __future__ import annotations

import pytest
import requests

from sandbox.server import RunningServer
from sandbox.testing import SandboxProcess
from tests.support.sandbox_graph import (
    ANN,
    DAN,
    FABRIKAM,
    FAY,
    FAY_UPN,
    NOROLES,
    READONLY,
    RITA,
    Graph,
    app_token,
    delegated_token,
    error,
    ok,
)

pytestmark = pytest.mark.integration

PROPERTIES = {"id", "name", "color", "hexColor", "isDefaultCalendar", "changeKey", "canShare", "canViewPrivateItems",
              "canEdit", "allowedOnlineMeetingProviders", "defaultOnlineMeetingProvider", "isTallyingResponses",
              "isRemovable", "owner"}


def local_client(local: RunningServer, token: str) -> Graph:
    session = requests.Session()
    session.trust_env = False  # REQUESTS_CA_BUNDLE would win over verify= otherwise
    session.verify = str(local.sandbox.pki.ca_bundle_path)
    return Graph(local.base_url, token, session)


def test_the_default_calendar_as_graph_shows_it(graph: Graph) -> None:
    response = graph.get(f"/users/{FAY_UPN}/calendar")
    calendar = ok(response, 200, "graph.calendar")
    assert set(calendar) == PROPERTIES | {"@odata.context", "@odata.etag"}
    assert calendar["@odata.context"].endswith(f"/v1.0/$metadata#users('{FAY_UPN}')/calendar/$entity")
    assert calendar["@odata.etag"] == f'W/"{calendar["changeKey"]}"'
    assert calendar["name"] == "Calendar" and calendar["isDefaultCalendar"] is True
    # The owner's address is the primary SMTP address (her mail), not her sign-in name.
    assert calendar["owner"] == {"name": "Fay Fischer", "address": FAY["mail"]}
    assert calendar["canEdit"] is True and calendar["isRemovable"] is False
    assert calendar["allowedOnlineMeetingProviders"] == ["teamsForBusiness"]
    assert calendar["defaultOnlineMeetingProvider"] == "teamsForBusiness"
    # Stable: by id, again, the same calendar; another user's is another one.
    again = ok(graph.get(f"/users/{FAY['id']}/calendar"), 200, "graph.calendar")
    assert (again["id"], again["changeKey"]) == (calendar["id"], calendar["changeKey"])
    assert again["@odata.context"].endswith(f"users('{FAY['id']}')/calendar/$entity")
    ann = ok(graph.get(f"/users/{ANN['mail']}/calendar"), 200, "graph.calendar")
    assert ann["id"] != calendar["id"] and ann["owner"] == {"name": ANN["displayName"], "address": ANN["mail"]}


def test_select_names_calendar_properties(graph: Graph) -> None:
    selected = ok(graph.get(f"/users/{FAY_UPN}/calendar", params={"$select": "Name,owner,canShare"}), 200,
                  "graph.calendar", selected=True)
    assert set(selected) == {"@odata.context", "@odata.etag", "id", "name", "owner", "canShare"}
    assert selected["@odata.context"].endswith(f"users('{FAY_UPN}')/calendar(name,owner,canShare)/$entity")
    assert selected["name"] == "Calendar" and selected["owner"]["address"] == FAY["mail"]
    error(graph.get(f"/users/{FAY_UPN}/calendar", params={"$select": "name,timeZone"}), 400,
          "RequestBroker--ParseUri", "Could not find a property named 'timeZone' on type 'microsoft.graph.calendar'.")


def test_who_may_read_the_calendar(graph: Graph, sandbox: SandboxProcess) -> None:
    read_only = graph.with_token(app_token(sandbox.base_url, READONLY))  # Calendars.Read
    assert ok(read_only.get(f"/users/{RITA['id']}/calendar"), 200, "graph.calendar")["owner"]["address"] == \
        RITA["mail"]
    no_roles = graph.with_token(app_token(sandbox.base_url, NOROLES))
    error(no_roles.get(f"/users/{RITA['mail']}/calendar"), 403, "ErrorAccessDenied",
          "Access is denied. Check credentials and try again.")
    error(graph.get(f"/users/{DAN['mail']}/calendar"), 403, "ErrorAccessDenied", "Access to OData is disabled.")
    error(graph.get("/users/nobody@fabrikam.example/calendar"), 404, "ErrorInvalidUser",
          "The requested user 'nobody@fabrikam.example' is invalid.")
    error(graph.get(f"/users/{FAY['mail']}/calendar"), 404, "ErrorInvalidUser")  # the mail is not her UPN
    error(graph.with_token(None).get(f"/users/{FAY_UPN}/calendar"), 401, "InvalidAuthenticationToken")
    error(graph.get("/me/calendar"), 400, "BadRequest", "/me request is only valid with delegated authentication flow.")


def test_me_calendar_with_delegated_scopes(local: RunningServer) -> None:
    fay = local_client(local, delegated_token(local, FABRIKAM, FAY, scopes=("Calendars.Read",)))
    mine = ok(fay.get("/me/calendar"), 200, "graph.calendar")
    assert mine["@odata.context"].endswith(f"users('{FAY['id']}')/calendar/$entity")
    assert mine["owner"] == {"name": "Fay Fischer", "address": FAY["mail"]}
    assert ok(fay.get(f"/users/{FAY_UPN}/calendar"), 200, "graph.calendar")["id"] == mine["id"]
    error(fay.get(f"/users/{ANN['mail']}/calendar"), 403, "ErrorAccessDenied")  # not shared with her
    profile_only = local_client(local, delegated_token(local, FABRIKAM, FAY, scopes=("User.Read",)))
    error(profile_only.get("/me/calendar"), 403, "ErrorAccessDenied")
