"""Fixtures the Graph sandbox tests share: the session sandbox reset to the Graph seed with an
app token from MSAL, and an in-process sandbox for tests that look inside it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sandbox.receiver import NotificationReceiver
from sandbox.server import RunningServer
from sandbox.testing import SandboxProcess
from tests.support.sandbox_graph import FABRIKAM, Graph, app_token, graph_seed, restore_seed, start_in_process


@pytest.fixture(scope="module")
def graph(sandbox: SandboxProcess) -> Iterator[Graph]:
    """The session sandbox (a process) reset to the Graph seed for this module; an app token from MSAL."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("REQUESTS_CA_BUNDLE", str(sandbox.ca_bundle))
        sandbox.reset(graph_seed())
        yield Graph(sandbox.base_url, app_token(sandbox.base_url, FABRIKAM))
        sandbox.reset(restore_seed())


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """A sandbox inside this process (its state and clock reachable), for this module."""
    running = start_in_process(tmp_path_factory.mktemp("graph-local"))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def hook() -> Iterator[NotificationReceiver]:
    """A webhook on 127.0.0.1 that answers Graph's validation and records notifications, for this module."""
    with NotificationReceiver() as receiver:
        yield receiver
