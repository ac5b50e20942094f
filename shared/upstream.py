"""The one seam where failures of what the service depends on (Graph, the identity platform, Key
Vault, Table Storage) become the service's own errors, in the contract's terms. Features raise
what they can say better themselves (a refusal for the organizer's mailbox, say) and hand
everything else here."""

from __future__ import annotations

import logging

from shared.errors import (
    ConcurrencyConflict,
    SecretNotFound,
    SecretStoreUnavailable,
    SecretUnavailable,
    ServiceError,
    UpstreamError,
    UpstreamThrottled,
)

log = logging.getLogger(__name__)

THROTTLED = frozenset({429, 503, 504})


def service_error(raised: BaseException) -> ServiceError | None:
    """What the caller sees for a dependency's failure; None for an exception that is not one
    (a bug: the caller answers a plain 500 and logs it)."""
    from shared.graph import GraphError
    from shared.tokens import IdentityError

    if isinstance(raised, ServiceError):
        return raised
    if isinstance(raised, GraphError):
        if raised.status in THROTTLED:
            return UpstreamThrottled("Microsoft Graph is throttling or unavailable; retry later.",
                                     retry_after=raised.retry_after or 5)
        return UpstreamError(f"Microsoft Graph answered {raised.status} {raised.code}.")
    if isinstance(raised, IdentityError):
        return UpstreamError(f"The Microsoft identity platform refused the request: {raised}.")
    if isinstance(raised, SecretStoreUnavailable):
        return UpstreamError("Key Vault is unavailable; retry later.")
    if isinstance(raised, SecretNotFound | SecretUnavailable):
        # A secret the service needed is gone or disabled (a member's token is handled where it
        # is read: that member must reconnect); for anything else the caller can only retry.
        return UpstreamError("A stored credential could not be read; retry later.")
    if isinstance(raised, ConcurrencyConflict):
        return UpstreamThrottled("The record is busy with another change; retry shortly.", retry_after=1)
    if type(raised).__module__.startswith("azure.core"):
        log.warning("storage call failed: %s", type(raised).__name__)
        return UpstreamError("Storage is unavailable; retry later.")
    return None
