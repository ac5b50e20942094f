"""Sessions that read the environment once (shared/sessions.py) for every Azure SDK client the
service builds: tables, queues and Key Vault share shared.clients.azure_transport."""

import pytest

PROXIES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


@pytest.fixture
def no_proxy(monkeypatch):
    for name in PROXIES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


def test_without_a_proxy_the_transport_stops_scanning_the_environment(no_proxy, monkeypatch):
    from shared.clients import azure_transport

    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/a/bundle.pem")
    transport = azure_transport()
    assert transport.session.trust_env is False
    assert transport.connection_config.verify == "/a/bundle.pem"  # the one thing kept from it


def test_with_a_proxy_the_transport_reads_the_environment_as_requests_does(no_proxy, monkeypatch):
    from shared.clients import azure_transport

    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:3128")
    assert azure_transport().session.trust_env is True
