"""Key files and passphrases.

Private keys are files whose names contain ``key``, created with mode 0600 and never printed;
public keys end in ``.pub``. Passphrases are stored only as argon2id hashes (PyNaCl pwhash),
with moderate parameters (PyNaCl's defaults of 1 GiB would exhaust small nodes).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from evstore.core.errors import InvalidInput, OperationalError

if TYPE_CHECKING:  # PyNaCl is loaded by the functions that use a key or a hash: opening a
    import nacl.public  # home to read it (status, show) needs neither
    import nacl.signing

# libsodium's argon2id "interactive" parameters (nacl.pwhash.argon2id.OPSLIMIT_INTERACTIVE,
# MEMLIMIT_INTERACTIVE), written out so that importing this module does not load PyNaCl;
# tests/ops/test_secrets_lazy.py checks that they still equal PyNaCl's.
OPSLIMIT = 2
MEMLIMIT = 67108864


def write_private(path: Path, data: bytes) -> None:
    """Create a private file with mode 0600 from the start (never world-readable)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def new_signing_key(home: Path) -> nacl.signing.SigningKey:
    import nacl.signing

    key = nacl.signing.SigningKey.generate()
    write_private(home / "host.key", key.encode())
    (home / "host.pub").write_text(key.verify_key.encode().hex() + "\n")
    return key


def new_transport_key(home: Path) -> nacl.public.PrivateKey:
    import nacl.public

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
    import nacl.signing

    return nacl.signing.SigningKey(_read_private(home / "host.key"))


def load_transport_key(home: Path) -> nacl.public.PrivateKey:
    import nacl.public

    return nacl.public.PrivateKey(_read_private(home / "transport.key"))


def hash_passphrase(passphrase: str) -> str:
    if not passphrase:
        raise InvalidInput("the passphrase is empty: give a non-empty passphrase")
    import nacl.pwhash

    return nacl.pwhash.argon2id.str(passphrase.encode(), opslimit=OPSLIMIT, memlimit=MEMLIMIT).decode()


def check_passphrase(stored_hash: str, passphrase: str) -> bool:
    import nacl.exceptions
    import nacl.pwhash

    try:
        return nacl.pwhash.verify(stored_hash.encode(), passphrase.encode())
    except (nacl.exceptions.InvalidkeyError, nacl.exceptions.CryptoError, ValueError):
        return False


def hash_parameters(stored: str) -> tuple[str, int, int, int] | None:
    """The algorithm, memory (KiB), passes and lanes of a PHC string such as
    ``$argon2id$v=19$m=65536,t=2,p=1$SALT$HASH``; None when it is not one (PyNaCl has no
    ``needs_rehash``: the string is read here)."""
    parts = stored.split("$")
    if len(parts) != 6 or parts[0] != "" or not parts[1]:
        return None
    params: dict[str, int] = {}
    for item in parts[3].split(","):
        key, sep, value = item.partition("=")
        if not sep or not value.isdigit():
            return None
        params[key] = int(value)
    if not {"m", "t", "p"} <= params.keys():
        return None
    return parts[1], params["m"], params["t"], params["p"]


def hash_weakness(stored: str) -> str | None:
    """Why ``stored`` is weaker than the hashes this project makes (argon2id with
    ``MEMLIMIT`` bytes and ``OPSLIMIT`` passes), or None when it is at least as strong."""
    got = hash_parameters(stored)
    if got is None:
        return "not an argon2id hash in PHC form ($argon2id$v=19$m=…,t=…,p=…$salt$hash)"
    algorithm, memory_kib, passes, _lanes = got
    if algorithm != "argon2id":
        return f"made with {algorithm}, not argon2id"
    if memory_kib * 1024 < MEMLIMIT:
        return f"argon2id with {memory_kib} KiB of memory (at least {MEMLIMIT // 1024} KiB)"
    if passes < OPSLIMIT:
        return f"argon2id with {passes} passes (at least {OPSLIMIT})"
    return None


def needs_rehash(stored: str) -> bool:
    """Should a passphrase that just matched ``stored`` be hashed again, with today's
    parameters? (They rose since it was made, or it was loaded weaker.)"""
    return hash_weakness(stored) is not None
