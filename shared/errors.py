"""Domain errors. Services raise these; `shared.http` maps them to the contract's envelope, once."""

from __future__ import annotations


class ServiceError(Exception):
    """An error the caller should see, with the contract's status and code."""

    status: int = 500
    code: str = "internal_error"

    def __init__(self, message: str, *, target: str | None = None, retry_after: int | None = None,
                 status: int | None = None, code: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.target = target
        self.retry_after = retry_after
        self.headers = dict(headers or {})  # more headers of the answer (WWW-Authenticate)
        if status is not None:
            self.status = status
        if code is not None:
            self.code = code


class Unauthenticated(ServiceError):
    """No bearer token, or one the service does not accept (RFC 6750: 401 with a `Bearer` challenge,
    `error="invalid_token"` when a token was sent)."""

    status, code = 401, "unauthenticated"

    def __init__(self, message: str, *, token_sent: bool) -> None:
        challenge = 'Bearer error="invalid_token"' if token_sent else "Bearer"
        super().__init__(message, headers={"WWW-Authenticate": challenge})


class Forbidden(ServiceError):
    """A valid token of a caller that may not call (RFC 6750 `insufficient_scope`)."""

    status, code = 403, "forbidden"

    def __init__(self, message: str) -> None:
        super().__init__(message, headers={"WWW-Authenticate": 'Bearer error="insufficient_scope"'})


class InvalidRequest(ServiceError):
    status, code = 400, "invalid_request"


class NotFound(ServiceError):
    status, code = 404, "not_found"


class MethodNotAllowed(ServiceError):
    status, code = 405, "method_not_allowed"


class Conflict(ServiceError):
    status, code = 409, "conflict"


class UpstreamError(ServiceError):
    status, code = 502, "upstream_error"


class UpstreamThrottled(ServiceError):
    status, code = 503, "upstream_throttled"


class TenantNotFound(ServiceError):
    status, code = 404, "tenant_not_found"


class BookingNotFound(ServiceError):
    status, code = 404, "booking_not_found"


class TenantOwnedElsewhere(ServiceError):
    status, code = 409, "tenant_owned_elsewhere"


class TenantNotEnabled(ServiceError):
    status, code = 409, "tenant_not_enabled"


class WrongMode(ServiceError):
    status, code = 409, "wrong_mode"


class UserNotConnected(ServiceError):
    status, code = 409, "user_not_connected"


class OutsideSecurityGroup(ServiceError):
    status, code = 403, "outside_security_group"


class SlotUnavailable(ServiceError):
    status, code = 409, "slot_unavailable"


class IdempotencyInProgress(ServiceError):
    status, code = 409, "idempotency_in_progress"


class IdempotencyConflict(ServiceError):
    status, code = 422, "idempotency_conflict"


class ConcurrencyConflict(Exception):
    """An ETag check failed: someone else wrote the row since it was read."""


class AlreadyExists(Exception):
    """A row (or secret name) that must be new already exists."""


class SecretNotFound(Exception):
    """No such secret, or no such version."""


class SecretUnavailable(Exception):
    """The secret exists but cannot be read now (disabled version, or a soft-deleted name)."""


class SecretStoreUnavailable(Exception):
    """Key Vault could not be reached or refused our identity; try again later."""


class PersonNotFound(ServiceError):
    status, code = 422, "person_not_found"


class BookingOutcomeUnknown(ServiceError):
    status, code = 503, "booking_outcome_unknown"


class PayloadTooLarge(ServiceError):
    status, code = 413, "payload_too_large"


class PreconditionFailed(ServiceError):
    status, code = 412, "precondition_failed"


class BookingCancelled(ServiceError):
    status, code = 409, "booking_cancelled"
