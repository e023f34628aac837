"""What app code imports from the platform (standard library only).

* :mod:`apprt.sdk.identity`: who is calling; checks the gateway's signed identity
  headers (``identity.current(request)``).
* :mod:`apprt.sdk.state`: the app's persistent key-value state per organization, over
  the platform API socket (``$APPRT_PLATFORM_SOCKET``).
* :mod:`apprt.sdk.errors`: what the platform refuses (:class:`PermissionDenied`,
  :class:`QuotaExceeded`, :class:`RateLimited`, :class:`Conflict`...).

The platform provides this package inside every sandbox; apps do not vendor it::

    from apprt.sdk import identity, state
"""

from apprt.sdk import errors, identity, limits, state
from apprt.sdk.errors import (
    Conflict,
    InvalidRequest,
    PermissionDenied,
    PlatformError,
    PlatformUnavailable,
    QuotaExceeded,
    RateLimited,
)
from apprt.sdk.identity import (
    Identity,
    IdentityError,
    identity_from_scope,
    verify_identity,
)

__all__ = [
    "Conflict",
    "Identity",
    "IdentityError",
    "InvalidRequest",
    "PermissionDenied",
    "PlatformError",
    "PlatformUnavailable",
    "QuotaExceeded",
    "RateLimited",
    "errors",
    "identity",
    "identity_from_scope",
    "limits",
    "state",
    "verify_identity",
]
