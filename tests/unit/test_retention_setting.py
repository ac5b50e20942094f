"""BOOKING_RETENTION_DAYS: 90 by default, at least 30 (idempotent replays find their booking for
the 30 days keys are kept); anything less stops the app with a message that names the setting."""

from __future__ import annotations

import pytest

from shared.settings import Settings, SettingsError
from tests.conftest import BASE_ENV


def test_default_is_90_days():
    assert Settings.from_env(BASE_ENV).booking_retention_days == 90


def test_30_days_is_the_least_and_less_is_refused_by_name():
    assert Settings.from_env(BASE_ENV | {"BOOKING_RETENTION_DAYS": "30"}).booking_retention_days == 30
    for value in ("29", "0", "-5", "ninety", "3651"):
        with pytest.raises(SettingsError, match="BOOKING_RETENTION_DAYS"):
            Settings.from_env(BASE_ENV | {"BOOKING_RETENTION_DAYS": value})
