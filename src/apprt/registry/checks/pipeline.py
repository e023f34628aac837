"""The checks in the order the upload pipeline runs them (see the package docstring)."""

from __future__ import annotations

from apprt.registry.checks import (
    Check,
    archive,
    compatibility,
    frontend,
    immutability,
    manifest,
    permissions,
    publisher,
    quality,
    secrets,
    security,
    signature,
)

PIPELINE: tuple[Check, ...] = (
    Check(archive.NAME, archive.run),
    Check(manifest.NAME, manifest.run, needs=("info",)),
    Check(publisher.NAME, publisher.run, needs=("manifest",)),
    Check(signature.NAME, signature.run, needs=("manifest",)),
    Check(immutability.NAME, immutability.run, needs=("manifest",)),
    Check(compatibility.NAME, compatibility.run, needs=("manifest",)),
    Check(security.NAME, security.run, needs=("root",)),
    Check(secrets.NAME, secrets.run, needs=("root",)),
    Check(frontend.NAME, frontend.run, needs=("root",)),
    Check(quality.NAME, quality.run, needs=("manifest",)),
    Check(permissions.NAME, permissions.run, needs=("manifest",)),
)

#: After this check passed, the package is extracted for the content checks.
EXTRACT_AFTER = immutability.NAME
