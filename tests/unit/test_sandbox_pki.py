"""The sandbox makes its certificates again whenever the current time is outside their validity:
a state folder written under a clock moved forward (libfaketime) or left for years still serves."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509

from sandbox import pki


def _certs(state) -> dict[str, x509.Certificate]:
    return {name: x509.load_pem_x509_certificate((state / name).read_bytes())
            for name in ("ca.pem", "server.pem", "signing-cert.pem")}


def _made_at(monkeypatch: pytest.MonkeyPatch, state, when: dt.datetime) -> dict[str, x509.Certificate]:
    monkeypatch.setattr(pki, "_now", lambda: when)
    pki.ensure_pki(state)
    monkeypatch.undo()
    return _certs(state)


@pytest.mark.parametrize("shift", [dt.timedelta(days=400), dt.timedelta(days=-4000)],
                         ids=["made-in-the-future", "long-expired"])
def test_certificates_outside_their_validity_are_made_again(tmp_path, monkeypatch, shift):
    now = dt.datetime.now(dt.UTC)
    old = _made_at(monkeypatch, tmp_path, now + shift)
    for cert in old.values():  # the premise: none of them is valid now
        assert not (cert.not_valid_before_utc <= now < cert.not_valid_after_utc - dt.timedelta(days=30))

    found = pki.ensure_pki(tmp_path)

    new = _certs(tmp_path)
    for name, cert in new.items():
        assert cert.serial_number != old[name].serial_number, name
        assert cert.not_valid_before_utc <= dt.datetime.now(dt.UTC) < cert.not_valid_after_utc, name
    assert new["server.pem"].issuer == new["ca.pem"].subject
    assert new["ca.pem"].public_bytes(pki.serialization.Encoding.PEM) in found.ca_bundle_path.read_bytes()


def test_valid_certificates_are_kept(tmp_path):
    pki.ensure_pki(tmp_path)
    first = _certs(tmp_path)
    pki.ensure_pki(tmp_path)
    assert {name: cert.serial_number for name, cert in _certs(tmp_path).items()} == {
        name: cert.serial_number for name, cert in first.items()}
