"""The ``.apppkg`` package format: build, read, sign, verify and extract app packages.

An ``.apppkg`` is a deterministic gzip-compressed PAX tar archive whose first member,
``MANIFEST``, lists the sha256 and size of every file, optionally followed by a
``SIGNATURE`` member holding detached Ed25519 signatures over the MANIFEST's digest.
The full format is in ``docs/package-format.md``.

Workflow
--------
Publisher side::

    build_package(app_dir, out)            # deterministic archive, MANIFEST first
    sign_package(out, load_private_key(k)) # adds SIGNATURE; repeatable, several keys

Consumer side (registry upload, installer)::

    info = read_package(path)              # one streaming pass, every safety check
    require_valid_signature(info, trusted) # raises unless a trusted key signed it
    extract_package(path, dest)            # all-or-nothing, never outside dest

Every rejection is an :class:`apprt.errors.PackageError` whose problems name the
archive member, what is wrong with it and how to fix it.

Example::

    >>> import tempfile
    >>> from pathlib import Path
    >>> from apprt.package import (build_package, extract_package, generate_keypair,
    ...     load_private_key, load_public_key, read_package, require_valid_signature,
    ...     sign_package)
    >>> workdir = tempfile.TemporaryDirectory()
    >>> tmp = Path(workdir.name)
    >>> (tmp / "app" / "backend").mkdir(parents=True)
    >>> _ = (tmp / "app" / "app.toml").write_text('name = "hello"\\n')
    >>> _ = (tmp / "app" / "backend" / "main.py").write_text("app = None\\n")
    >>> pkg = tmp / "hello.apppkg"
    >>> _ = build_package(tmp / "app", pkg)
    >>> keys = generate_keypair(tmp / "keys")
    >>> _ = sign_package(pkg, load_private_key(keys.private))
    >>> info = read_package(pkg)
    >>> require_valid_signature(info, [load_public_key(keys.public)]).valid
    True
    >>> _ = extract_package(pkg, tmp / "installed")
    >>> (tmp / "installed" / "backend" / "main.py").read_text()
    'app = None\\n'
    >>> workdir.cleanup()
"""

from __future__ import annotations

from apprt.package.archive import (
    FileEntry,
    PackageInfo,
    Signature,
    build_package,
    read_package,
)
from apprt.package.extract import extract_package
from apprt.package.limits import DEFAULT_LIMITS, PackageLimits
from apprt.package.signing import (
    KeyPaths,
    SignatureCheck,
    generate_keypair,
    key_id,
    load_private_key,
    load_public_key,
    require_valid_signature,
    sign_package,
    verify_signatures,
)
from apprt.package.wheels import collect_wheels, default_cache_dir

__all__ = [
    "DEFAULT_LIMITS",
    "FileEntry",
    "KeyPaths",
    "PackageInfo",
    "PackageLimits",
    "Signature",
    "SignatureCheck",
    "build_package",
    "collect_wheels",
    "default_cache_dir",
    "extract_package",
    "generate_keypair",
    "key_id",
    "load_private_key",
    "load_public_key",
    "read_package",
    "require_valid_signature",
    "sign_package",
    "verify_signatures",
]
