"""Lazy, per-process factories for the SDK clients: nothing is built (or imported) until first
use, so importing the app stays light and cold start stays short."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from shared.settings import get_settings

POOL_SIZE = 32  # connections kept per host: the queue function runs up to batchSize jobs at once


def pooled_session() -> Any:
    """A requests session whose pool holds enough connections for this process's threads (the
    default of 10 makes concurrent jobs discard and reopen TLS connections)."""
    import requests
    from requests.adapters import HTTPAdapter

    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=8, pool_maxsize=POOL_SIZE)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


def azure_transport() -> Any:
    """The Azure SDK's requests transport (tables, queues, Key Vault) on a pooled session that
    reads the environment once (shared/sessions.py: the per-request proxy scan cost a quarter of
    a storage call's CPU)."""
    from azure.core.pipeline.transport import RequestsTransport

    from shared.sessions import ca_bundle, environment_read_once

    session = pooled_session()
    if environment_read_once(session):
        return RequestsTransport(session=session, session_owner=False, connection_verify=ca_bundle())
    return RequestsTransport(session=session, session_owner=False)


@lru_cache(maxsize=1)
def azure_credential() -> Any:
    """The Function App's managed identity (through DefaultAzureCredential). Locally the sandbox
    serves the managed-identity endpoint, so the same code path runs on a laptop."""
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential(exclude_interactive_browser_credential=True)


@lru_cache(maxsize=1)
def secret_store() -> Any:
    from shared.secrets import SecretStore

    settings = get_settings()
    return SecretStore(
        settings.key_vault_url, azure_credential(),
        verify_challenge_resource=settings.key_vault_is_azure, transport=azure_transport(),
    )


@lru_cache(maxsize=1)
def repositories() -> Any:
    from shared.storage import Repositories, TableStore

    settings = get_settings()
    return Repositories(TableStore(settings.storage, prefix=settings.table_prefix))


@lru_cache(maxsize=1)
def token_provider() -> Any:
    from shared.tokens import TokenProvider

    return TokenProvider(get_settings(), secret_store(), http_client=pooled_session())


@lru_cache(maxsize=1)
def member_tokens() -> Any:
    from shared.members import MemberTokens

    return MemberTokens(repositories(), secret_store(), token_provider())


@lru_cache(maxsize=1)
def graph_client() -> Any:
    from shared.graph import GraphClient

    return GraphClient(get_settings(), token_provider())


@lru_cache(maxsize=1)
def job_queue() -> Any:
    from shared.queues import JobQueue

    settings = get_settings()
    return JobQueue(settings.storage, settings.jobs_queue)


@lru_cache(maxsize=1)
def poison_queue() -> Any:
    """The jobs queue's poison queue (`<JOBS_QUEUE_NAME>-poison`), for work given up on purpose."""
    from shared.queues import JobQueue

    settings = get_settings()
    return JobQueue(settings.storage, settings.jobs_queue + "-poison")


@lru_cache(maxsize=1)
def people() -> Any:
    from shared.people import People

    return People(graph_client())


@lru_cache(maxsize=1)
def caller_tokens() -> Any:
    """The check of callers' bearer tokens (PyJWT is imported here, on the first caller's request)."""
    from shared.access_tokens import CallerTokens

    return CallerTokens(get_settings(), pooled_session())
