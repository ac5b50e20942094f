"""What ops sees, checked offline: the alert rules (infra/modules/alerts.bicep, their queries in
infra/alerts/) all send to the action group whose e-mail is a parameter; the operations workbook
(infra/workbooks/operations.json) is a workbook of the format's schema; every query of both is
parsed and bound by Microsoft's KQL parser (Kusto.Language, tests/infra/kql_check.js) against the
tables of a workspace-based Application Insights resource and their columns, and nothing else
(tests/infra/app_insights_tables.json); every log line a query reads is one the code writes."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.infra.conftest import INFRA, PARAMETER_FILES, ROOT, accessor_path, module_tree, one_resource
from tests.infra.test_app_settings import production_sources

ALERTS = INFRA / "alerts"
WORKBOOK = INFRA / "workbooks" / "operations.json"
TABLES = json.loads((Path(__file__).with_name("app_insights_tables.json")).read_text())["tables"]
KQL_CHECK = Path(__file__).with_name("kql_check.js")
KUSTO = ROOT / "node_modules" / "@kusto" / "language-service-next" / "Kusto.Language.Bridge.min.js"

# What each alert is for (the brief of issue 19): its query file and a word of its display name.
EXPECTED_ALERTS = {
    "poison-queue": "Poison queue",
    "operator-alert": "OPERATOR ALERT",
    "http-5xx": "5xx",
    "graph-429": "throttling",
    "subscription-renewal": "subscription renewals",
}


def workbook() -> dict[str, Any]:
    return json.loads(WORKBOOK.read_text())


def workbook_queries() -> dict[str, str]:
    return {item["name"]: item["content"]["query"] for item in workbook()["items"] if item["type"] == 3}


def alert_queries() -> dict[str, str]:
    return {path.stem: path.read_text() for path in sorted(ALERTS.glob("*.kql"))}


# ----- the alert rules --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def alerts_tree(trees) -> dict[str, Any]:
    return module_tree(trees, "alerts")


def rules(alerts_tree: dict[str, Any]) -> list[dict[str, Any]]:
    return alerts_tree["variables"]["rules"]["value"]


def test_one_rule_per_alert_each_with_its_query_file(alerts_tree):
    found = {rule["name"]: rule for rule in rules(alerts_tree)}
    assert set(found) == set(EXPECTED_ALERTS) == set(alert_queries())
    for name, rule in found.items():
        load = rule["query"]["function"]
        assert load["type"] == "load_text_content"
        assert (INFRA / "modules" / load["parameters"]["file_path"]).resolve() == ALERTS / f"{name}.kql"
        assert EXPECTED_ALERTS[name].lower() in rule["displayName"].lower()
        assert "README, Operations" in rule["description"]
        assert rule["severity"] in (0, 1, 2)
        frequency, window = (int(re.fullmatch(r"PT(\d+)M", rule[k]).group(1)) for k in ("frequency", "window"))
        assert frequency in (5, 10, 15, 30) and window >= frequency


def test_every_rule_queries_the_workspace_and_sends_to_the_action_group(alerts_tree):
    resource = one_resource(alerts_tree, "Microsoft.Insights/scheduledQueryRules")
    assert resource["config"]["loop_type"]["detail"] == {"item_name": "rule", "array_name": "rules"}
    rule = resource["config"]["config"]
    assert rule["kind"] == "LogAlert"
    properties = rule["properties"]
    assert properties["enabled"] is True and properties["autoMitigate"] is True
    assert properties["scopes"] == ["workspaceId"]
    assert [accessor_path(a) for a in properties["actions"]["actionGroups"]] == ["actionGroup.id"]
    (condition,) = properties["criteria"]["allOf"]
    assert accessor_path(condition["query"]) == "rule.query"
    # A row returned in the window fires the rule (each query ends in its own condition).
    assert (condition["timeAggregation"], condition["operator"], condition["threshold"]) == ("Count", "GreaterThan", 0)


def test_the_action_group_mails_the_alert_email_parameter(alerts_tree, main_tree):
    group = one_resource(alerts_tree, "Microsoft.Insights/actionGroups")["config"]
    assert group["location"] == "Global" and group["properties"]["enabled"] is True
    (receiver,) = group["properties"]["emailReceivers"]
    assert receiver["emailAddress"] == "alertEmail" and receiver["useCommonAlertSchema"] is True
    declared = main_tree["parameters"]["alertEmail"]
    assert declared["type"] == "string" and declared["default"] is None, "required: no environment without alerts"
    module = main_tree["modules"]["alerts"]["config"]["params"]
    assert module["alertEmail"] == "alertEmail"
    assert accessor_path(module["workspaceId"]) == "monitoring.outputs.workspaceId"
    for path in PARAMETER_FILES:
        assert "alertEmail" in json.loads(path.read_text())["parameters"], path.name


# ----- the workbook -----------------------------------------------------------------------------


def test_the_workbook_is_valid_json_of_the_workbook_schema():
    import jsonschema

    schema = json.loads(Path(__file__).with_name("workbook.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.Draft202012Validator(schema).validate(workbook())


def test_the_workbook_names_and_parameters_fit_together():
    document = workbook()
    items = document["items"]
    names = [item["name"] for item in items]
    assert len(names) == len(set(names))
    parameters = [p for item in items if item["type"] == 9 for p in item["content"]["parameters"]]
    declared = {p["name"] for p in parameters}
    assert len({p["id"] for p in parameters}) == len(parameters)
    assert {"TimeRange", "Workspace"} <= declared
    for item in (i for i in items if i["type"] == 3):
        content = item["content"]
        used = set(re.findall(r"\{([A-Za-z]+)(?::[a-z]+)?\}", content["query"]))
        used |= {r.strip("{}") for r in content["crossComponentResources"]}
        used |= {content["timeContextFromParameter"]} if "timeContextFromParameter" in content else set()
        assert used <= declared, f"{item['name']}: {sorted(used - declared)} not declared"
    assert document["fallbackResourceIds"] == ["__WORKSPACE_ID__"]


def test_the_workbook_module_fills_in_the_workspace(trees, main_tree):
    workbook_resource = one_resource(module_tree(trees, "workbook"), "Microsoft.Insights/workbooks")["config"]
    properties = workbook_resource["properties"]
    assert properties["category"] == "workbook" and workbook_resource["kind"] == "shared"
    assert properties["sourceId"] == "workspaceId"
    replace = properties["serializedData"]["function"]
    assert replace["type"] == "replace"
    source = (INFRA / "modules" / "workbook.bicep").read_text()
    assert "replace(loadTextContent('../workbooks/operations.json'), '__WORKSPACE_ID__', workspaceId)" in source
    module = main_tree["modules"]["workbook"]["config"]["params"]
    assert accessor_path(module["workspaceId"]) == "monitoring.outputs.workspaceId"


def test_the_workbook_shows_what_ops_needs():
    titles = " | ".join(item["content"]["title"].lower() for item in workbook()["items"] if item["type"] == 3)
    for needed in ("tenants by status", "bookings", "per day", "graph call time", "429", "queue depths"):
        assert needed in titles, needed


# ----- every query, through Microsoft's KQL parser ----------------------------------------------


def kusto_diagnostics(queries: dict[str, str]) -> dict[str, list[str]]:
    node = shutil.which("node")
    if node is None or not KUSTO.exists():
        pytest.fail("Kusto.Language is missing: run `make setup` (npm ci installs @kusto/language-service-next)")
    tables = {name: "(" + ", ".join(f"{column}:{kind}" for column, kind in columns.items()) + ")"
              for name, columns in TABLES.items()}
    done = subprocess.run([node, str(KQL_CHECK)], input=json.dumps({"tables": tables, "queries": queries}),
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


def as_run(query: str) -> str:
    """A workbook query as the portal sends it: parameters replaced by values of their kind."""
    return re.sub(r"\{TimeRange:grain\}", "1h", query)


def test_the_tables_are_those_of_workspace_based_application_insights():
    assert set(TABLES) == {"AppAvailabilityResults", "AppBrowserTimings", "AppDependencies", "AppEvents",
                           "AppExceptions", "AppMetrics", "AppPageViews", "AppPerformanceCounters", "AppRequests",
                           "AppSystemEvents", "AppTraces"}


def test_every_query_parses_and_names_only_application_insights_tables_and_columns():
    queries = {f"alert {name}": query for name, query in alert_queries().items()}
    queries |= {f"workbook {name}": as_run(query) for name, query in workbook_queries().items()}
    report = kusto_diagnostics(queries)
    problems = {name: found for name, found in report.items() if found}
    assert problems == {}


def test_the_checker_finds_an_unknown_table_column_and_syntax_error():
    report = kusto_diagnostics({"table": "traces | take 1", "column": "AppTraces | where message == 'x'",
                                "syntax": "AppTraces | summarize count() by", "fine": "AppTraces | take 1"})
    assert any("KS204" in d for d in report["table"])  # the classic name: not in a workspace
    assert any("KS142" in d for d in report["column"])
    assert report["syntax"] and report["fine"] == []


# ----- every log line a query reads is one the code writes --------------------------------------


def test_the_graph_line_the_queries_parse_is_the_one_shared_graph_writes():
    graph = (ROOT / "shared" / "graph.py").read_text()
    assert '"graph %s %s -> %s in %.0f ms, request-id %s, client-request-id %s"' in graph
    assert '"graph %s %s failed without an answer (%s), client-request-id %s"' in graph
    for query in [*alert_queries().values(), *workbook_queries().values()]:
        if "parse Message with \"graph \"" in query:
            assert 'parse Message with "graph " Method " " Path " -> " Status:int " in "' in query


@pytest.mark.parametrize("line", [
    "OPERATOR ALERT",               # consent/jobs.py, at CRITICAL
    "booking confirmed",            # booking/service.py
    "booking cancelled",
    "subscription renewal failed",  # sync code, at ERROR
    "queue depth %s: %d",           # the booking reconciler, for the jobs queue and its poison queue
    "tenants in status %s: %d",     # the token refresh timer, once a run for every status
])
def test_every_line_the_queries_read_is_logged_by_the_code(line):
    assert line in production_sources(), f"no production code logs {line!r} (README, Operations)"


def test_the_readme_queries_parse_against_the_same_tables():
    readme = (ROOT / "README.md").read_text()
    start = readme.index("\n## Operations\n")
    end = readme.find("\n## ", start + 1)
    section = readme[start : end if end != -1 else len(readme)]
    blocks = re.findall(r"```kusto\n(.*?)```", section, flags=re.DOTALL)
    queries = {f"readme {i}": q for i, q in enumerate(q.strip() for b in blocks for q in re.split(r"\n\s*\n", b))}
    assert len(queries) >= 3
    assert {name: found for name, found in kusto_diagnostics(queries).items() if found} == {}
