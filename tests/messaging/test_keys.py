"""The secret and what derives from it: tokens per purpose, forgery refused, credentials encrypted."""

from __future__ import annotations

import pytest

from kizuna import keys


def test_token_round_trips_and_is_bound_to_its_purpose() -> None:
    token = keys.sign("unsubscribe", "message:42")
    assert keys.unsign("unsubscribe", token) == "message:42"
    with pytest.raises(keys.BadToken):
        keys.unsign("tracking", token)


@pytest.mark.parametrize("tamper", ["body", "mac", "garbage"])
def test_forged_token_is_refused(tamper: str) -> None:
    token = keys.sign("unsubscribe", "message:42")
    body, mac = token.split(".")
    forged = {
        "body": keys.sign("unsubscribe", "message:43").split(".")[0] + "." + mac,
        "mac": body + "." + ("A" * len(mac)),
        "garbage": "not-a-token",
    }[tamper]
    with pytest.raises(keys.BadToken):
        keys.unsign("unsubscribe", forged)


def test_credentials_are_encrypted_and_tampering_is_detected() -> None:
    stored = keys.encrypt("smtp-password-秘密")
    assert "smtp-password" not in stored
    assert keys.decrypt(stored) == "smtp-password-秘密"
    with pytest.raises(keys.BadToken):
        keys.decrypt(stored[:-4] + "AAAA")


def test_generated_secret_is_kept_in_home_with_private_mode(tmp_path) -> None:
    first = keys._home_secret(tmp_path)
    keys._home_secret.cache_clear()
    assert keys._home_secret(tmp_path) == first
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0
