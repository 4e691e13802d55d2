"""Key files and passphrases.

Private keys are files whose names contain ``key``, created with mode 0600 and never printed;
public keys end in ``.pub``. Passphrases are stored only as argon2id hashes (PyNaCl pwhash),
with moderate parameters (PyNaCl's defaults of 1 GiB would exhaust small nodes).
"""

from __future__ import annotations

import os
from pathlib import Path

import nacl.exceptions
import nacl.public
import nacl.pwhash
import nacl.signing

from evstore.core.errors import InvalidInput, OperationalError

OPSLIMIT = nacl.pwhash.argon2id.OPSLIMIT_INTERACTIVE
MEMLIMIT = nacl.pwhash.argon2id.MEMLIMIT_INTERACTIVE


def write_private(path: Path, data: bytes) -> None:
    """Create a private file with mode 0600 from the start (never world-readable)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def new_signing_key(home: Path) -> nacl.signing.SigningKey:
    key = nacl.signing.SigningKey.generate()
    write_private(home / "host.key", key.encode())
    (home / "host.pub").write_text(key.verify_key.encode().hex() + "\n")
    return key


def new_transport_key(home: Path) -> nacl.public.PrivateKey:
    key = nacl.public.PrivateKey.generate()
    write_private(home / "transport.key", key.encode())
    (home / "transport.pub").write_text(key.public_key.encode().hex() + "\n")
    return key


def _read_private(path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise OperationalError(
            f"{path} is missing: this home is damaged; restore it from a backup"
        ) from None
    if len(data) != 32:
        raise OperationalError(f"{path} is not a 32-byte key: restore it from a backup")
    return data


def load_signing_key(home: Path) -> nacl.signing.SigningKey:
    return nacl.signing.SigningKey(_read_private(home / "host.key"))


def load_transport_key(home: Path) -> nacl.public.PrivateKey:
    return nacl.public.PrivateKey(_read_private(home / "transport.key"))


def hash_passphrase(passphrase: str) -> str:
    if not passphrase:
        raise InvalidInput("the passphrase is empty: give a non-empty passphrase")
    return nacl.pwhash.argon2id.str(passphrase.encode(), opslimit=OPSLIMIT, memlimit=MEMLIMIT).decode()


def check_passphrase(stored_hash: str, passphrase: str) -> bool:
    try:
        return nacl.pwhash.verify(stored_hash.encode(), passphrase.encode())
    except (nacl.exceptions.InvalidkeyError, nacl.exceptions.CryptoError, ValueError):
        return False
