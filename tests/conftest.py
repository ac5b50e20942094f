"""Shared fixtures. Azurite and the sandbox are started by the tests themselves, on free ports,
and stopped after; nothing here needs a service running beforehand."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.callers import ORGANIZATION, caller_env, caller_token
from tools.azurite import Azurite, start_azurite

ROOT = Path(__file__).resolve().parent.parent

# Settings for importing the app in tests; integration fixtures replace the endpoints with live
# local ones. Ids are fixed test values, not real registrations.
BASE_ENV = {
    "TOKEN_REFRESH_SCHEDULE": "0 0 */6 * * *",
    # The hosts' own reconciler timer runs only on 29 February: tests call it when they mean to,
    # and a run between a test's steps (it would rightly finish a booking) cannot race them.
    "BOOKING_RECONCILE_SCHEDULE": "0 0 0 29 2 *",
    "JOBS_QUEUE_NAME": "tenkc-jobs",
    "PUBLIC_BASE_URL": "http://127.0.0.1:7071",
    "ALLOWED_RETURN_ORIGINS": "https://app.10kc.example,http://127.0.0.1:3000",
    "APP_CLIENT_ID": "11111111-2222-3333-4444-555555555555",
    "KEY_VAULT_URL": "https://127.0.0.1:9/",
    "SERVICE_STORAGE": "UseDevelopmentStorage=true",
    "LOG_LEVEL": "INFO",
    **caller_env(),  # the callers of tests/sandbox_seed.json (tests/support/callers.py)
}
for _name, _value in BASE_ENV.items():
    os.environ.setdefault(_name, _value)

# Every log line the service writes during the whole suite, kept for tests/zz_after_all, which
# checks that no token, code or secret ever reached one.
SUITE_LOG = Path(os.environ.get("SUITE_LOG_DIR") or __import__("tempfile").mkdtemp(prefix="suite-log-")) / "suite.log"


def pytest_configure(config: pytest.Config) -> None:
    import logging

    from shared.logs import RequestIdFilter

    handler = logging.FileHandler(SUITE_LOG, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s [%(request_id)s] %(message)s"))
    handler.addFilter(RequestIdFilter())
    logging.getLogger().addHandler(handler)


def clear_caches() -> None:
    from shared import clients
    from shared.settings import get_settings

    get_settings.cache_clear()
    clients.azure_credential.cache_clear()
    clients.secret_store.cache_clear()
    clients.repositories.cache_clear()
    clients.token_provider.cache_clear()
    clients.member_tokens.cache_clear()
    clients.graph_client.cache_clear()
    clients.job_queue.cache_clear()
    clients.people.cache_clear()
    clients.caller_tokens.cache_clear()
    from sync import jobs as sync_jobs

    sync_jobs.cache_clear()
    from consent import routes as consent_routes

    consent_routes.tenant_service.cache_clear()
    consent_routes.consent_service.cache_clear()
    from availability import routes as availability_routes

    availability_routes.availability_service.cache_clear()
    from booking import routes as booking_routes

    booking_routes.booking_service.cache_clear()
    clients.poison_queue.cache_clear()
    from background import jobs as background_jobs
    from consent import jobs as consent_jobs
    from sync import webhooks

    background_jobs.background.cache_clear()
    consent_jobs.consent_jobs.cache_clear()
    consent_jobs._HOME_VERDICT.clear()
    webhooks.webhooks.cache_clear()


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    instance = start_azurite(tmp_path_factory.mktemp("azurite"))
    yield instance
    instance.stop()


@pytest.fixture
def table_store(azurite: Azurite):
    """A TableStore on Azurite with its own table prefix, so tests never see each other's rows."""
    from shared.settings import StorageConnection
    from shared.storage import TableStore

    prefix = "t" + uuid.uuid4().hex[:12]
    return TableStore(StorageConnection(connection_string=azurite.connection_string), prefix=prefix)


def _seed_from_today() -> Path:
    """tests/sandbox_seed.json with Ann's stand-up on the tests' day (tests/support/days.py), written
    to a temporary folder (tests never write the repository)."""
    import json
    import tempfile

    from tests.support.days import at

    seed = json.loads((ROOT / "tests" / "sandbox_seed.json").read_text(encoding="utf-8"))
    ann = next(user for tenant in seed["tenants"] for user in tenant.get("users", [])
               if user["mail"] == "ann@fabrikam.example")
    ann["events"] = [{"subject": "Standup", "start": at(0, "09:00:00+01:00"), "end": at(0, "09:15:00+01:00"),
                      "showAs": "busy"}]
    path = Path(tempfile.mkdtemp(prefix="sandbox-seed-")) / "sandbox_seed.json"
    path.write_text(json.dumps(seed, indent=1), encoding="utf-8")
    return path


SANDBOX_SEED = _seed_from_today()


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory):
    """The local Microsoft cloud on a free port, seeded from tests/sandbox_seed.json."""
    from sandbox.testing import start_sandbox

    instance = start_sandbox(tmp_path_factory.mktemp("sandbox"), SANDBOX_SEED)
    yield instance
    instance.stop()


@pytest.fixture
def sandbox_env(sandbox, monkeypatch: pytest.MonkeyPatch):
    """The process environment of the service pointed at the sandbox (managed identity, CA
    bundle, endpoints), with every cached setting and client rebuilt from it."""
    import json

    seed = json.loads(SANDBOX_SEED.read_text())
    values = {
        **sandbox.managed_identity_env(),
        "KEY_VAULT_URL": sandbox.base_url,
        "IDENTITY_AUTHORITY_HOST": sandbox.base_url,
        "GRAPH_BASE_URL": sandbox.base_url + "/v1.0",
        "APP_CLIENT_ID": seed["apps"][0]["clientId"],
        **caller_env(),
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    clear_caches()
    yield values
    clear_caches()


@pytest.fixture
def app_env(azurite, sandbox, sandbox_env, monkeypatch: pytest.MonkeyPatch):
    """The whole service's environment: Azurite (tables with a prefix of this test's own), the
    sandbox reset to the test seed's tenants, every cached client rebuilt."""
    import json

    seed = json.loads(SANDBOX_SEED.read_text())
    sandbox.reset({"apps": seed["apps"], "tenants": seed["tenants"]})  # apps: the callers are back too
    monkeypatch.setenv("SERVICE_STORAGE", azurite.connection_string)
    monkeypatch.setenv("STORAGE_TABLE_PREFIX", "t" + uuid.uuid4().hex[:12])
    # A queue of this test's own: the in-process host's poller (bound at start to the default
    # queue) never runs one test's jobs in another test's settings; tests that want the jobs run
    # take them off this queue (tests/support/jobs.py) or start hosts of their own.
    monkeypatch.setenv("JOBS_QUEUE_NAME", "q" + uuid.uuid4().hex[:12])
    clear_caches()
    yield seed
    clear_caches()


@pytest.fixture(scope="session")
def host(azurite):
    """The real FunctionApp served over HTTP by the local host, as `make run` serves it. Its queue
    poller is bound at start to the test Azurite (never to a developer's running one)."""
    import function_app
    from devhost import LocalHost

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SERVICE_STORAGE", azurite.connection_string)
        instance = LocalHost(function_app.app, port=0).start()
    yield instance
    instance.stop()


# A create's write window in booking tests: a 2 s client timeout plus 1 s in which Graph may still
# act on a create the client gave up on (production: 10 s + 60 s), so unknown outcomes settle fast.
WRITE_WINDOW_SECONDS = 3


@pytest.fixture
def short_write_window(app_env, monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setenv("HTTP_TIMEOUT_SECONDS", "2")
    monkeypatch.setenv("GRAPH_WRITE_MARGIN_SECONDS", "1")
    clear_caches()
    return WRITE_WINDOW_SECONDS


@pytest.fixture
def api(host, app_env, sandbox):
    """A requests session on the running app (`api.get("/tenants/…")`), as the 10KC web app calls
    it: a caller token from the sandbox (`Authorization: Bearer …`) and `X-Organization-Id: org-42`
    on every request. A request sends none of them with `headers={"Authorization": None}` (or
    `"X-Organization-Id": None`), others by naming them; `api.acting_for("org-7")` is a session of
    the same caller for another organization."""
    import requests

    class Api(requests.Session):
        def request(self, method, url, *args, **kwargs):  # type: ignore[override]
            kwargs.setdefault("timeout", 30)
            kwargs["allow_redirects"] = False  # Session.get sets True; we look at our own 302s
            return super().request(method, f"{host.base_url}/api{url}", *args, **kwargs)

        def acting_for(self, organization: str) -> Api:
            other = Api()
            other.trust_env = False
            other.headers.update(self.headers)
            other.headers["X-Organization-Id"] = organization
            sessions.append(other)
            return other

    sessions: list[Api] = []
    session = Api()
    session.trust_env = False  # the app is plain http on loopback; no proxies, no CA bundle needed
    session.headers["Authorization"] = f"Bearer {caller_token(sandbox)}"
    session.headers["X-Organization-Id"] = ORGANIZATION
    yield session
    for other in [session, *sessions]:
        other.close()
