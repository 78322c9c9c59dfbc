"""The one secret and what derives from it: signing keys, signed tokens and the encryption of stored credentials.

Every purpose (``tracking``, ``unsubscribe``, ``webhook``, ``credentials`` ...) gets its own key derived from
``KIZUNA_SECRET_KEY`` with HKDF, so a token made for one purpose never verifies for another, and one secret is
all an operator has to keep and back up. When the setting is empty a random secret is generated once into
``$KIZUNA_HOME/secret_key`` (mode 0600), so the embedded default is secure without configuration.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import threading
import time
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from kizuna.config import get_settings
from kizuna.errors import KizunaError

_LOCK = threading.Lock()
# 128 bits of HMAC: unforgeable, and short enough for a URL a mail client will not wrap.
_MAC_BYTES = 16


class BadToken(KizunaError):
    """A token that was forged, altered, made for another purpose or has expired."""


def secret_key() -> bytes:
    """The configured secret, or the generated one in ``$KIZUNA_HOME/secret_key`` (created on first use)."""
    configured = get_settings().secret_key
    if configured:
        return configured.encode()
    return _home_secret_in(get_settings().home, os.getcwd())


@lru_cache(maxsize=8)
def _home_secret_in(home: Path, cwd: str) -> bytes:
    # Resolving the path is a few system calls: ~80 µs, paid once here rather than on every token signed (a mail
    # carries one per link).
    return _home_secret((Path(cwd) / home).resolve())


@lru_cache(maxsize=8)
def _home_secret(home: Path) -> bytes:
    path = home / "secret_key"
    with _LOCK:
        if not path.exists():
            home.mkdir(parents=True, exist_ok=True)
            # O_EXCL: two processes starting at once must not each write a different secret.
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass
            else:
                with os.fdopen(fd, "w") as out:
                    out.write(secrets.token_urlsafe(48) + "\n")
    for _ in range(50):  # another process may be writing it this very moment
        value = path.read_text().strip()
        if value:
            return value.encode()
        time.sleep(0.02)
    raise RuntimeError(f"{path} is empty; delete it to generate a new secret or set KIZUNA_SECRET_KEY")


def derive(purpose: str, *, length: int = 32) -> bytes:
    """A key for ``purpose`` alone (HKDF-SHA256 over the secret)."""
    return _derive(secret_key(), purpose, length)


@lru_cache(maxsize=64)
def _derive(secret: bytes, purpose: str, length: int) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=b"kizuna", info=purpose.encode()).derive(secret)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(purpose: str, value: str) -> str:
    """``value`` and its MAC as one URL-safe token (the value is readable, not secret)."""
    return signer(purpose)(value)


def signer(purpose: str) -> Callable[[str], str]:
    """``sign`` for one purpose with its key derived once: for code that signs many tokens in a row (a mail
    carries one per link, a batch hundreds of mails)."""
    key = derive(purpose)

    def sign_one(value: str) -> str:
        body = value.encode()
        mac = hmac.digest(key, body, "sha256")[:_MAC_BYTES]
        return f"{_b64(body)}.{_b64(mac)}"

    return sign_one


def unsign(purpose: str, token: str) -> str:
    """The value inside a token made by ``sign`` for the same purpose; ``BadToken`` otherwise."""
    try:
        body_part, mac_part = token.split(".", 1)
        body, mac = _unb64(body_part), _unb64(mac_part)
    except (ValueError, TypeError) as exc:
        raise BadToken("the link is malformed") from exc
    expected = hmac.digest(derive(purpose), body, "sha256")[:_MAC_BYTES]
    if not hmac.compare_digest(mac, expected):
        raise BadToken("the link is not valid (it was altered or not made by this Kizuna)")
    try:
        return body.decode()
    except UnicodeDecodeError as exc:
        raise BadToken("the link is malformed") from exc


def mac_hex(purpose: str, data: bytes) -> str:
    """HMAC-SHA256 of ``data`` under the purpose's key, as hex (webhook signatures)."""
    return hmac.new(derive(purpose), data, hashlib.sha256).hexdigest()


def encrypt(value: str, *, purpose: str = "credentials") -> str:
    """Encrypt a stored credential (SMTP password, LINE channel token); authenticated, so tampering is detected."""
    return _fernet(purpose).encrypt(value.encode()).decode()


def decrypt(token: str, *, purpose: str = "credentials") -> str:
    try:
        return _fernet(purpose).decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise BadToken("a stored credential cannot be decrypted: KIZUNA_SECRET_KEY changed since it was saved") from exc


def _fernet(purpose: str) -> Fernet:
    return Fernet(base64.urlsafe_b64encode(derive(f"fernet:{purpose}")))
