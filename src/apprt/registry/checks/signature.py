"""``signature``: an active key of the publisher signed the package.

:func:`apprt.package.require_valid_signature` against the publisher's unrevoked
keys: refuses an unsigned package, one signed only by unknown keys, and one with a
signature by a trusted key that does not verify. A package signed only by a
revoked key is refused with that reason named.
"""

from __future__ import annotations

from apprt.errors import PackageError, Problem
from apprt.package import require_valid_signature
from apprt.registry.checks import CheckContext, CheckOutcome, failed, passed
from apprt.registry.services.publishers import active_keys, revoked_key_ids

NAME = "signature"


def run(ctx: CheckContext) -> CheckOutcome:
    info = ctx.info
    assert info is not None
    keys = active_keys(ctx.session, ctx.publisher)
    signers = {s.key_id for s in info.signatures}
    revoked = signers & revoked_key_ids(ctx.session, ctx.publisher)
    try:
        check = require_valid_signature(info, keys)
    except PackageError as exc:
        problems = list(exc.problems)
        if revoked and not signers & keys.keys():
            problems = [
                Problem(
                    f"signed by revoked key {kid} of publisher {ctx.publisher.name!r}",
                    file="SIGNATURE",
                    hint="sign with an active key (`apprt app sign FILE --key KEY`); "
                    "register a new key with `apprt registry key add`",
                )
                for kid in sorted(revoked)
            ]
        elif not keys:
            problems.append(
                Problem(
                    f"publisher {ctx.publisher.name!r} has no active signing key",
                    hint="register one: `apprt registry key add PUBLISHER PUBKEY_FILE`",
                )
            )
        outcome = failed("no valid signature by an active publisher key", problems)
        outcome.stop = True
        return outcome
    return passed(f"signed by key {check.key_id}", key_id=check.key_id)
