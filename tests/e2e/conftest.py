"""Headless Debian Chromium, driven by Playwright, trusting the sandbox CA through an NSS database
in a temporary HOME (`certutil` from libnss3-tools; `make browser` installs both), so TLS
verification stays on in the browser too. Debian's firefox-esr too, driven by Playwright over
WebDriver BiDi through a small relay (tests/e2e/firefox_bidi.py says why)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Playwright, sync_playwright

from sandbox.testing import SandboxProcess

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
FIREFOX = "/usr/bin/firefox-esr"
FIREFOX_RELAY = Path(__file__).with_name("firefox_bidi.py")
ENGINES = ("chromium", "firefox")


def require_tools(engine: str = "chromium") -> str:
    """certutil's path; a clear failure (never a skip) when the browser tooling is missing."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: run `make browser` (tools/ensure_chromium.sh installs Debian's chromium)")
    if engine == "firefox" and not os.access(FIREFOX, os.X_OK):
        pytest.fail(f"{FIREFOX} is missing: run `make browser` (tools/ensure_firefox.sh installs Debian's firefox-esr)")
    certutil = shutil.which("certutil")
    if certutil is None:
        pytest.fail("certutil is missing: run `make browser` (tools/ensure_chromium.sh installs libnss3-tools)")
    return certutil


def launch(playwright: Playwright, home: Path, engine: str = "chromium") -> Browser:
    """Headless `engine` ("chromium" or "firefox") with `home` as its HOME."""
    home.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "HOME": str(home)}
    if engine == "chromium":
        return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, env=env)
    # Playwright's WebDriver BiDi Firefox; the executable it starts is the relay, which starts
    # firefox-esr (with this Python, which has websockets).
    executable = home.parent / f"{home.name}-firefox-esr"
    executable.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FIREFOX_RELAY}" "$@"\n')
    executable.chmod(0o755)
    return playwright.firefox.launch(channel="moz-firefox", executable_path=str(executable), env=env)


@pytest.fixture(scope="session")
def trusted_home(sandbox: SandboxProcess, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A HOME whose NSS database trusts the sandbox CA, as Chromium on Linux reads it."""
    certutil = require_tools()
    home = tmp_path_factory.mktemp("chromium-home")
    nssdb = home / ".pki" / "nssdb"
    nssdb.mkdir(parents=True)
    subprocess.run([certutil, "-d", f"sql:{nssdb}", "-N", "--empty-password"], check=True, capture_output=True)
    subprocess.run([certutil, "-d", f"sql:{nssdb}", "-A", "-t", "C,,", "-n", "10kc-sandbox-ca",
                    "-i", str(sandbox.ca_cert)], check=True, capture_output=True)
    return home


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as instance:
        yield instance


@pytest.fixture(scope="session")
def browser(playwright: Playwright, trusted_home: Path) -> Iterator[Browser]:
    instance = launch(playwright, trusted_home)
    yield instance
    instance.close()
