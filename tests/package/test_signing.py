"""Keys, sign_package, verify_signatures, require_valid_signature."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import stat
import tarfile
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from apprt.errors import PackageError
from apprt.package import (
    Signature,
    build_package,
    generate_keypair,
    key_id,
    load_private_key,
    load_public_key,
    read_package,
    require_valid_signature,
    sign_package,
    verify_signatures,
)

from ._helpers import M, gz, manifest_of, sample_files, tar_bytes, write_tree


@pytest.fixture
def pkg(tmp_path: Path) -> Path:
    src = write_tree(tmp_path / "app", sample_files())
    out = tmp_path / "app.apppkg"
    build_package(src, out)
    return out


def members_of(path: Path) -> list[tuple[str, bytes]]:
    with tarfile.open(path, "r:gz") as tf:
        return [(m.name, tf.extractfile(m).read()) for m in tf.getmembers()]


def repack(members: list[tuple[str, bytes]]) -> bytes:
    return gz(tar_bytes([M(name, data) for name, data in members]))


# --- keys -------------------------------------------------------------------------


def test_generate_keypair(tmp_path: Path) -> None:
    paths = generate_keypair(tmp_path / "keys", "publisher")
    assert paths.private == tmp_path / "keys" / "publisher.key"
    assert paths.public == tmp_path / "keys" / "publisher.pub"
    assert stat.S_IMODE(paths.private.stat().st_mode) == 0o600
    assert paths.private.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert paths.public.read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")
    private = load_private_key(paths.private)
    public = load_public_key(paths.public)
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert key_id(public) == key_id(private.public_key()) == hashlib.sha256(raw).hexdigest()


def test_generate_keypair_never_overwrites(tmp_path: Path) -> None:
    first = generate_keypair(tmp_path)
    before = first.private.read_bytes()
    with pytest.raises(PackageError, match="refusing to overwrite"):
        generate_keypair(tmp_path)
    assert first.private.read_bytes() == before
    first.public.unlink()
    with pytest.raises(PackageError, match="refusing to overwrite"):
        generate_keypair(tmp_path)  # the private key alone is enough to refuse
    assert first.private.read_bytes() == before


def write_pem(path: Path, key: object, *, public: bool = False) -> Path:
    if public:
        data = key.public_key().public_bytes(  # type: ignore[attr-defined]
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    else:
        data = key.private_bytes(  # type: ignore[attr-defined]
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    path.write_bytes(data)
    return path


def test_load_key_errors(tmp_path: Path) -> None:
    keys = generate_keypair(tmp_path)
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    cases = [
        (load_private_key, keys.public, "this is a public key"),
        (load_public_key, keys.private, "this is a private key"),
        (load_private_key, write_pem(tmp_path / "rsa.key", rsa_key), "an RSA key"),
        (load_public_key, write_pem(tmp_path / "rsa.pub", rsa_key, public=True), "an RSA key"),
        (load_private_key, write_pem(tmp_path / "ec.key", ec_key), "elliptic-curve"),
        (load_private_key, tmp_path / "missing.key", "cannot read"),
        (load_public_key, tmp_path / "missing.pub", "cannot read"),
    ]
    (tmp_path / "junk").write_text("hello")
    cases += [
        (load_private_key, tmp_path / "junk", "not a PEM private key"),
        (load_public_key, tmp_path / "junk", "not a PEM public key"),
    ]
    for loader, path, needle in cases:
        with pytest.raises(PackageError, match=needle) as excinfo:
            loader(path)
        assert excinfo.value.problems[0].hint, (loader, path)


def test_encrypted_private_key(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    path = tmp_path / "enc.key"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"s3cret"),
        )
    )
    with pytest.raises(PackageError, match="encrypted"):
        load_private_key(path)
    with pytest.raises(PackageError, match="wrong password"):
        load_private_key(path, b"nope")
    assert key_id(load_private_key(path, b"s3cret").public_key()) == key_id(key.public_key())
    plain = write_pem(tmp_path / "plain.key", key)
    with pytest.raises(PackageError, match="not encrypted"):
        load_private_key(plain, b"s3cret")


# --- signing ----------------------------------------------------------------------


def test_sign_and_verify(pkg: Path) -> None:
    unsigned = read_package(pkg)
    key = Ed25519PrivateKey.generate()
    info = sign_package(pkg, key)
    assert info == read_package(pkg)
    assert info.files == unsigned.files and info.manifest_digest == unsigned.manifest_digest
    names = [name for name, _ in members_of(pkg)]
    assert names[:2] == ["MANIFEST", "SIGNATURE"]
    assert names[2:] == [f.path for f in unsigned.files]
    doc = json.loads(dict(members_of(pkg))["SIGNATURE"])
    assert doc["version"] == 1 and doc["signatures"][0]["algorithm"] == "ed25519"
    assert doc["signatures"][0]["key_id"] == key_id(key.public_key())

    checks = verify_signatures(info, [key.public_key()])
    assert [(c.key_id, c.valid) for c in checks] == [(key_id(key.public_key()), True)]
    assert require_valid_signature(info, {key_id(key.public_key()): key.public_key()}).valid
    key.public_key().verify(info.signatures[0].signature, info.signing_message)
    assert info.signing_message == b"apprt-package-v1:" + info.manifest_digest.encode()


def test_signing_is_deterministic_and_idempotent(pkg: Path, tmp_path: Path) -> None:
    a, b = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    sign_package(pkg, a, tmp_path / "a1.apppkg")
    sign_package(pkg, a, tmp_path / "a2.apppkg")
    sign_package(tmp_path / "a1.apppkg", a, tmp_path / "a3.apppkg")  # re-sign: replaced
    one = (tmp_path / "a1.apppkg").read_bytes()
    assert one == (tmp_path / "a2.apppkg").read_bytes() == (tmp_path / "a3.apppkg").read_bytes()

    ab = sign_package(tmp_path / "a1.apppkg", b, tmp_path / "ab.apppkg")
    assert [s.key_id for s in ab.signatures] == [key_id(a.public_key()), key_id(b.public_key())]
    aba = sign_package(tmp_path / "ab.apppkg", a, tmp_path / "aba.apppkg")
    assert aba.signatures == ab.signatures  # a's entry replaced in place, order kept
    assert (tmp_path / "aba.apppkg").read_bytes() == (tmp_path / "ab.apppkg").read_bytes()
    checks = verify_signatures(ab, [a.public_key(), b.public_key()])
    assert [c.valid for c in checks] == [True, True]
    # The unsigned original is untouched when out= is given.
    assert read_package(pkg).signatures == ()


def test_tampered_file_with_old_manifest_is_a_digest_mismatch(pkg: Path) -> None:
    key = Ed25519PrivateKey.generate()
    sign_package(pkg, key)
    members = members_of(pkg)
    index = next(i for i, (n, _) in enumerate(members) if n == "backend/main.py")
    name, data = members[index]
    members[index] = (name, bytes([data[0] ^ 1]) + data[1:])
    with pytest.raises(PackageError, match="does not match its sha256") as excinfo:
        read_package(io.BytesIO(repack(members)))
    assert excinfo.value.problems[0].file == "backend/main.py"


def test_tampered_manifest_breaks_the_signature(pkg: Path) -> None:
    key = Ed25519PrivateKey.generate()
    sign_package(pkg, key)
    members = dict(members_of(pkg))
    files = {n: d for n, d in members.items() if n not in ("MANIFEST", "SIGNATURE")}
    files["backend/main.py"] = b"import os; os.system('evil')\n"
    forged = repack(
        [
            ("MANIFEST", manifest_of(files)),
            ("SIGNATURE", members["SIGNATURE"]),
            *sorted(files.items()),
        ]
    )
    info = read_package(io.BytesIO(forged))  # consistent, so it reads fine...
    checks = verify_signatures(info, [key.public_key()])
    assert [c.valid for c in checks] == [False]  # ...but the signature does not match
    with pytest.raises(PackageError, match="does not match") as excinfo:
        require_valid_signature(info, [key.public_key()])
    assert key_id(key.public_key()) in str(excinfo.value)


def test_unknown_key_and_unsigned(pkg: Path) -> None:
    with pytest.raises(PackageError, match="package is not signed") as excinfo:
        require_valid_signature(read_package(pkg), [])
    assert "apprt app sign" in excinfo.value.problems[0].hint
    signer, stranger = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    info = sign_package(pkg, signer)
    checks = verify_signatures(info, [stranger.public_key()])
    assert [(c.key_id, c.valid) for c in checks] == [(key_id(signer.public_key()), None)]
    with pytest.raises(PackageError, match=f"signed by unknown key {key_id(signer.public_key())}"):
        require_valid_signature(info, [stranger.public_key()])


def test_one_valid_signature_is_enough_but_a_bad_trusted_one_is_fatal(pkg: Path) -> None:
    a, b = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    sign_package(pkg, a)
    info = sign_package(pkg, b)
    assert require_valid_signature(info, [b.public_key()]).key_id == key_id(b.public_key())
    forged = Signature(info.signatures[0].key_id, bytes(64))
    bad = dataclasses.replace(info, signatures=(forged, *info.signatures[1:]))
    with pytest.raises(PackageError, match="does not match"):
        require_valid_signature(bad, [a.public_key(), b.public_key()])


def test_trusted_mapping_must_use_key_ids(pkg: Path) -> None:
    key = Ed25519PrivateKey.generate()
    info = sign_package(pkg, key)
    with pytest.raises(ValueError, match="key id"):
        verify_signatures(info, {"publisher": key.public_key()})


def test_sign_refuses_broken_package_and_leaves_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "bad.apppkg"
    bad.write_bytes(gz(tar_bytes([M("app.toml", b"x")])))
    with pytest.raises(PackageError, match="MANIFEST"):
        sign_package(bad, Ed25519PrivateKey.generate(), tmp_path / "out.apppkg")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.apppkg"]
    before = bad.read_bytes()
    with pytest.raises(PackageError):
        sign_package(bad, Ed25519PrivateKey.generate())
    assert bad.read_bytes() == before


def test_generate_keypair_refuses_bad_names(tmp_path: Path) -> None:
    for name in ("", "../evil", ".hidden"):
        with pytest.raises(PackageError, match="invalid key name"):
            generate_keypair(tmp_path, name)
    assert list(tmp_path.iterdir()) == []
