"""Consent: tenant registration, the consent redirect and callback, member connections."""
