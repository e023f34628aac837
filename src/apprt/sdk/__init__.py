"""What app code imports from the platform (standard library only).

* :mod:`apprt.sdk.identity`: check the gateway's signed identity headers.
"""

from apprt.sdk.identity import (
    Identity,
    IdentityError,
    identity_from_scope,
    verify_identity,
)

__all__ = ["Identity", "IdentityError", "identity_from_scope", "verify_identity"]
