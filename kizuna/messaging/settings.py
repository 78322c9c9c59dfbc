"""Channel settings saved in the UI: one row per channel (``email``, ``line`` ...), credentials encrypted.

``values`` holds what an admin may read back (SMTP host, sender identity, caps, quiet hours); ``secrets`` holds
credentials (SMTP password, DKIM private key, LINE channel token) encrypted with ``kizuna.keys.encrypt``, which
nobody reads back through the UI or the API: a form shows whether one is set and can replace or remove it.
Every channel shares the sending rules read by the gate (``rules``): the frequency cap and the quiet hours.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from kizuna import keys
from kizuna.auth import audit
from kizuna.auth.permissions import Actor, require
from kizuna.db import Base, JSONType, UTCDateTime, utcnow
from kizuna.errors import ValidationError


class ChannelSettings(Base):
    __tablename__ = "channel_settings"

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(32), unique=True)
    values: Mapped[dict] = mapped_column(JSONType, default=dict)
    # name -> Fernet token; never shown, never logged, never audited (the audit says only that it changed).
    secrets: Mapped[dict] = mapped_column(JSONType, default=dict)
    version: Mapped[int] = mapped_column(default=1)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(320), default="")


@dataclass(frozen=True)
class DeliveryRules:
    """What the gate applies to a channel's marketing messages."""

    # At most ``cap_count`` marketing messages per customer in ``cap_days`` days (0: no cap), counted across
    # journeys and campaigns.
    cap_count: int = 0
    cap_days: int = 7
    # Marketing messages due between these local times (the customer's time zone) wait until ``quiet_end``;
    # ``quiet_start`` after ``quiet_end`` spans midnight (21:00-08:00). None: no quiet hours.
    quiet_start: dt.time | None = None
    quiet_end: dt.time | None = None

    def quiet_until(self, local: dt.datetime) -> dt.datetime | None:
        """The local time the quiet hours around ``local`` end, or None when ``local`` is outside them."""
        start, end = self.quiet_start, self.quiet_end
        if start is None or end is None or start == end:
            return None
        t = local.timetz().replace(tzinfo=None)
        inside = start <= t < end if start < end else t >= start or t < end
        if not inside:
            return None
        until = local.replace(hour=end.hour, minute=end.minute, second=0, microsecond=0)
        if until <= local:
            until += dt.timedelta(days=1)
        return until


def parse_time(value: Any, *, field: str) -> dt.time | None:
    """``"21:00"`` -> 21:00; empty -> None."""
    if value in (None, ""):
        return None
    if isinstance(value, dt.time):
        return value
    try:
        hour, minute = str(value).strip().split(":")
        return dt.time(int(hour), int(minute))
    except ValueError as exc:
        raise ValidationError(f"{field} must be a time of day like 21:00, not {value!r}", field=field) from exc


def _row(session: Session, channel: str) -> ChannelSettings | None:
    return session.scalars(select(ChannelSettings).where(ChannelSettings.channel == channel)).first()


def load(session: Session, channel: str) -> dict[str, Any]:
    """The channel's saved values (empty when never saved)."""
    row = _row(session, channel)
    return dict(row.values or {}) if row else {}


def secret(session: Session, channel: str, name: str) -> str | None:
    """A saved credential, decrypted; None when none is saved."""
    row = _row(session, channel)
    token = (row.secrets or {}).get(name) if row else None
    return keys.decrypt(token) if token else None


def secrets_set(session: Session, channel: str) -> set[str]:
    """The names of the credentials saved for the channel (what a form may say is set)."""
    row = _row(session, channel)
    return set((row.secrets or {}).keys()) if row else set()


def rules(session: Session, channel: str) -> DeliveryRules:
    values = load(session, channel)
    return rules_from(values)


def rules_from(values: dict[str, Any]) -> DeliveryRules:
    return DeliveryRules(
        cap_count=int(values.get("cap_count") or 0),
        cap_days=int(values.get("cap_days") or 7),
        quiet_start=parse_time(values.get("quiet_start"), field="quiet_start"),
        quiet_end=parse_time(values.get("quiet_end"), field="quiet_end"),
    )


def save(
    session: Session,
    *,
    actor: Actor,
    channel: str,
    values: dict[str, Any],
    secrets: dict[str, str | None] | None = None,
) -> ChannelSettings:
    """Replace the channel's values; set (a string) or remove (None) the named credentials, keep the others."""
    require(actor, "channels:manage")
    rules_from(values)  # refuse a bad cap or quiet hour before anything is stored
    row = _row(session, channel)
    if row is None:
        row = ChannelSettings(channel=channel, values={}, secrets={}, version=0)
        session.add(row)
    before = dict(row.values or {})
    stored = dict(row.secrets or {})
    changed_secrets = []
    for name, value in (secrets or {}).items():
        if value is None:
            if stored.pop(name, None) is not None:
                changed_secrets.append(f"{name} removed")
        elif value:
            stored[name] = keys.encrypt(value)
            changed_secrets.append(f"{name} set")
    row.values = dict(values)
    row.secrets = stored
    row.version = (row.version or 0) + 1
    row.updated_at = utcnow()
    row.updated_by = actor.label
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="channel_settings.update",
        entity_type="channel_settings",
        entity_id=channel,
        details={"changes": audit.changes(before, row.values), "secrets": changed_secrets},
        summary=f"{channel} settings saved",
    )
    return row


RULE_FIELDS = ("cap_count", "cap_days", "quiet_start", "quiet_end")


def _clean_quiet_hours(values: dict[str, Any]) -> None:
    for name in ("quiet_start", "quiet_end"):
        parsed = parse_time(values[name], field=name)
        values[name] = parsed.strftime("%H:%M") if parsed else ""
    if bool(values["quiet_start"]) != bool(values["quiet_end"]):
        raise ValidationError("quiet hours need both a start and an end", field="quiet_end")


def read_rules(session: Session, *, actor: Actor, channel: str) -> dict[str, Any]:
    """A channel's frequency cap and quiet hours as stored (defaults where none are)."""
    require(actor, "channels:manage")
    found = rules(session, channel)
    return {
        "channel": channel,
        "cap_count": found.cap_count,
        "cap_days": found.cap_days,
        "quiet_start": found.quiet_start.strftime("%H:%M") if found.quiet_start else "",
        "quiet_end": found.quiet_end.strftime("%H:%M") if found.quiet_end else "",
    }


def save_rules(session: Session, *, actor: Actor, channel: str, data: Any) -> ChannelSettings:
    """Set a channel's frequency cap and quiet hours (``DeliveryRulesIn``), keeping its other settings."""
    values = {name: getattr(data, name) for name in RULE_FIELDS}
    _clean_quiet_hours(values)
    return save(session, actor=actor, channel=channel, values={**load(session, channel), **values})


# --- the email settings page and API ---------------------------------------------------------------------------

EMAIL_SECRETS = ("smtp_password", "dkim_private_key")


def read_email(session: Session, *, actor: Actor) -> Any:
    """The email settings as the page and the API show them: values, which credentials are set, where mail goes."""
    from kizuna.config import get_settings
    from kizuna.messaging.schemas import EmailSettingsRead
    from kizuna.messaging.smtp import smtp_config

    require(actor, "channels:manage")
    try:
        smtp = smtp_config(session)
        shown = smtp.shown if smtp else None
    except ValidationError as exc:
        shown = f"invalid: {exc.message}"
    return EmailSettingsRead(
        values=load(session, "email"),
        secrets_set=sorted(secrets_set(session, "email")),
        smtp=shown,
        public_url=get_settings().public_url,
    )


def save_email(session: Session, *, actor: Actor, data: Any) -> ChannelSettings:
    """Save the email settings (``EmailSettingsIn``): a credential given as None is kept, ``""`` removes it."""
    import dkim.crypto

    values = data.model_dump(exclude=set(EMAIL_SECRETS))
    _clean_quiet_hours(values)
    for name in ("from_address", "reply_to"):
        if values[name] and "@" not in values[name]:
            raise ValidationError(f"{name} must be an email address", field=name)
    key = data.dkim_private_key
    if key:
        try:
            dkim.crypto.parse_pem_private_key(key.encode())
        except Exception as exc:  # noqa: BLE001 - dkimpy raises several kinds for a key it cannot read
            raise ValidationError(
                "the DKIM private key is not a PEM RSA private key", field="dkim_private_key"
            ) from exc
    changes: dict[str, str | None] = {}
    for name in EMAIL_SECRETS:
        value = getattr(data, name)
        if value is not None:  # None keeps the saved credential; "" removes it
            changes[name] = value or None
    return save(session, actor=actor, channel="email", values=values, secrets=changes)
