"""Parsing one customer row: header values to the typed, normalised values the writer stores.

Runs in parser processes for big files, so nothing here touches the database. Most rows pass the per-field
checks read from ``CustomerCreate`` (the fast path); anything else is judged by ``CustomerCreate`` itself.
"""

from __future__ import annotations

import datetime as dt
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import annotated_types
import pydantic

from kizuna.config import get_settings
from kizuna.customers import identities
from kizuna.customers.identities import MIRRORED as IDENTITY_FIELDS
from kizuna.customers.importer.columns import COUNTRIES, FIELDS, GENDER, IDENTITY_AT, PREFECTURES, WHOLE_NAMES
from kizuna.customers.schemas import CustomerCreate
from kizuna.errors import KizunaError
from kizuna.fields import service as custom_fields
from kizuna.imports.importer import ImportOptions, RowRejected, Warn, errors_from, field_error, ignore_warning
from kizuna.imports.reader import Record
from kizuna.imports.report import Reason
from kizuna.imports.values import CellError, nfkc, parse_bool, parse_date, split_tags
from kizuna.normalize import full_name, split_full_name


@dataclass(slots=True)
class CustomerRow:
    line: int
    fields: tuple[Any, ...]
    tags: list[str] | None = None
    email_opt_in: bool | None = None
    # (full_name, full_name_kana) of this row alone, computed by the parser (in a worker process).
    names: tuple[str, str | None] = ("", None)
    # Identities of kinds without a customer column (LINE user id, external_id:<source> ...).
    more_ids: tuple[tuple[str, str], ...] = ()
    _values: dict[str, Any] | None = field(default=None, repr=False, compare=False)

    def __reduce__(self) -> tuple[Any, ...]:
        # Positional arguments pickle smaller and faster than the slots' state.
        return CustomerRow, (self.line, self.fields, self.tags, self.email_opt_in, self.names, self.more_ids)

    @property
    def values(self) -> dict[str, Any]:
        """The row's non-empty values by field name (built on first use: most rows never need it)."""
        if self._values is None:
            self._values = {name: v for name, v in zip(FIELDS, self.fields, strict=True) if v is not None}
        return self._values

    def identities(self) -> list[tuple[str, str]]:
        fields = self.fields
        found = [(kind, fields[i]) for kind, i in IDENTITY_AT if fields[i] is not None]
        if self.more_ids:
            found.extend(self.more_ids)
        return found


def parse_row(record: Record, options: ImportOptions, warn: Warn = ignore_warning) -> CustomerRow:
    """The row as a CustomerRow.

    Raises RowRejected when the row cannot name its customer (a bad e-mail, phone or external id) or is
    damaged (a NUL character). A bad value of any other field is left out and reported through ``warn``:
    one wrong birth date does not cost the whole person.
    """
    raw = dict(record.values)
    tags = opt_in = None
    for whole, family, given in WHOLE_NAMES:
        if whole in raw:
            text = raw.pop(whole)
            if family not in raw and given not in raw and isinstance(text, str):
                raw[family], raw[given] = split_full_name(text)
    if "tags" in raw:
        tags = split_tags(raw.pop("tags"))
        long = [t for t in tags if len(t) > 100]
        if long:
            warn(
                "tags",
                Reason(
                    f"tags: tag '{long[0][:20]}...' is longer than 100 characters and was left out",
                    "error.import_tag_too_long",
                    {"tag": f"{long[0][:20]}..."},
                ),
            )
            tags = [t for t in tags if len(t) <= 100]
        if len(tags) > (most := get_settings().max_tags_per_customer):
            warn(
                "tags",
                Reason(
                    f"tags: {len(tags)} tags; a customer has at most {most}, the first {most} were kept",
                    "error.import_too_many_tags",
                    {"count": len(tags), "limit": most},
                ),
            )
            tags = tags[:most]
    if "email_opt_in" in raw:
        try:
            opt_in = parse_bool(raw.pop("email_opt_in"))
        except ValueError as exc:
            warn("email_opt_in", Reason(f"email_opt_in: {exc}; no consent recorded", *_no_consent(exc)))
    if "email_opt_out" in raw:
        try:
            opted_out = parse_bool(raw.pop("email_opt_out"))
        except ValueError as exc:
            warn("email_opt_out", Reason(f"email_opt_out: {exc}; no consent recorded", *_no_consent(exc)))
        else:
            opt_in = not opted_out if opt_in is None else opt_in
    if "birth_date" in raw:
        try:
            raw["birth_date"] = parse_date(raw["birth_date"])
        except ValueError as exc:
            _, reason = field_error("birth_date", exc)
            warn("birth_date", reason.reworded(f"{reason.text}; left out"))
            del raw["birth_date"]
    if "gender" in raw:
        raw["gender"] = GENDER.get(nfkc(raw["gender"]).casefold(), raw["gender"])
    # Codes and English names other systems write (JP-13, Japan): plain ASCII, so no NFKC for every row.
    if type(raw.get("prefecture")) is str:
        raw["prefecture"] = PREFECTURES.get(raw["prefecture"].casefold(), raw["prefecture"])
    if type(raw.get("country")) is str:
        raw["country"] = COUNTRIES.get(raw["country"].casefold(), raw["country"])
    more_ids = _more_identities(record) if record.extras else ()
    if options.extra_to_attributes and record.extras:
        raw["attributes"] = {k.strip(): v for k, v in record.extras.items() if not identities.kind_for_header(k)}
    custom = {name: raw.pop(name) for name in [n for n in raw if n.startswith("attributes.")]}
    if custom:
        raw["attributes"] = {**raw.get("attributes", {}), **_custom_values(custom, options)}
    values = _fast_values(raw)
    while values is None:
        # Something the fast path does not judge (an error, a field without a plain check): Pydantic decides,
        # with its own messages.
        try:
            data = CustomerCreate(**raw)
        except pydantic.ValidationError as exc:
            errors = errors_from(exc)
            if any(type(v) is str and "\x00" in v for v in raw.values()):
                # Not a wrong value but a damaged row; nothing in it is trusted.
                raise RowRejected(errors) from None
            fatal = [(f, r) for f, r in errors if f.split(".")[0] not in raw or f in IDENTITY_FIELDS]
            if fatal:
                raise RowRejected(errors) from None
            for name, reason in errors:
                warn(name, reason.reworded(f"{reason.text}; left out"))
                raw.pop(name.split(".")[0], None)
        else:
            values = data.model_dump(exclude_none=True, exclude={"tags"})
    if not more_ids and not any(kind in values for kind in IDENTITY_FIELDS):
        raise RowRejected(
            [
                (
                    "email",
                    Reason(
                        "a row needs an email, phone or external_id to recognise the customer",
                        "error.import_no_identity",
                    ),
                )
            ]
        )
    whole = whole_names(values)
    return CustomerRow(
        record.line,
        tuple(map(values.get, FIELDS)),
        tags,
        opt_in,
        (whole["full_name"], whole["full_name_kana"]),
        more_ids,
    )


def _custom_values(cells: dict[str, Any], options: ImportOptions) -> dict[str, Any]:
    """``attributes.<key>`` cells as their custom fields store them; a wrong one rejects the row (nothing of
    it is written), naming the field. A key no field defines is kept as the text given."""
    rules = {rule.key: rule for rule in options.custom_fields}
    out: dict[str, Any] = {}
    for name, cell in cells.items():
        key = name.removeprefix("attributes.")
        rule = rules.get(key)
        if rule is None:
            out[key] = cell
            continue
        try:
            out[key] = custom_fields.typed(rule, cell, user_exists=options.user_ids.__contains__)
        except KizunaError as exc:
            raise RowRejected([(name, Reason(exc.message, exc.key or "error.value_error", _params(exc)))]) from None
    return out


def _more_identities(record: Record) -> tuple[tuple[str, str], ...]:
    """Identities from columns named after a kind without a customer column; a bad one rejects the row."""
    found = []
    for header, value in record.extras.items():
        kind = identities.kind_for_header(header)
        if kind is None or value is None or (isinstance(value, str) and not value.strip()):
            continue
        try:
            found.append((kind, identities.normalise(kind, value)))
        except KizunaError as exc:
            raise RowRejected([(kind, Reason(exc.message, exc.key or "error.value_error", _params(exc)))]) from None
    return tuple(dict.fromkeys(found))


def _no_consent(exc: ValueError) -> tuple[str, dict[str, Any]]:
    """The key and params of a consent flag that is not yes or no (so no consent was recorded)."""
    value = exc.params.get("value", "") if isinstance(exc, CellError) else ""
    return "error.import_consent_not_recorded", {"value": value}


def _params(exc: KizunaError) -> dict[str, Any]:
    return exc.params if exc.key else {"message": exc.message}


# The per-field checks of CustomerCreate, read from the model itself so its validators (the normalisers) and
# limits stay the only rules: a row whose every field passes them gets exactly the values Pydantic would give,
# without building a model per row; anything else goes through CustomerCreate.
_INVALID = object()


def _field_checks(model: type[pydantic.BaseModel]) -> dict[str, Callable[[Any], Any]]:
    with_validators = {f for d in model.__pydantic_decorators__.field_validators.values() for f in d.info.fields}
    checks: dict[str, Callable[[Any], Any]] = {}
    for name, info in model.model_fields.items():
        args = typing.get_args(info.annotation)
        if name in with_validators or len(args) != 2 or args[1] is not type(None):
            continue
        inner = args[0]
        limits = [m for m in info.metadata if isinstance(m, annotated_types.MinLen | annotated_types.MaxLen)]
        if len(limits) != len(info.metadata):
            continue
        low = max([m.min_length for m in limits if isinstance(m, annotated_types.MinLen)], default=0)
        high = min([m.max_length for m in limits if isinstance(m, annotated_types.MaxLen)], default=None)
        if typing.get_origin(inner) is typing.Annotated:
            base, *meta = typing.get_args(inner)
            if base is str and len(meta) == 1 and isinstance(meta[0], pydantic.BeforeValidator):
                checks[name] = _str_check(meta[0].func, low, high, cached=name not in _UNIQUE_FIELDS)  # type: ignore[arg-type]
        elif not limits and typing.get_origin(inner) is typing.Literal:
            checks[name] = _choice_check(frozenset(typing.get_args(inner)))
        elif not limits and inner is dt.date:
            checks[name] = _date_check
    return checks


def _str_check(func: Callable[[Any], Any], low: int, high: int | None, *, cached: bool) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        try:
            out = func(value)
        except ValueError:
            return _INVALID
        if type(out) is not str or len(out) < low or (high is not None and len(out) > high) or out != out.strip():
            return _INVALID
        return out

    if not cached:
        return check
    # Names, readings, prefectures and cities repeat across a customer file; each distinct text is judged once
    # per parser process (the checks are pure functions of the text).
    remembered = lru_cache(maxsize=16384)(check)

    def check_cached(value: Any) -> Any:
        return remembered(value) if type(value) is str else check(value)

    return check_cached


# Values nearly every row has its own of: a cache would only churn.
_UNIQUE_FIELDS = frozenset({"email", "phone", "external_id", "address_line"})


def _choice_check(choices: frozenset[Any]) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        return value if type(value) is str and value in choices else _INVALID

    return check


def _date_check(value: Any) -> Any:
    return value if type(value) is dt.date else _INVALID


_CHECKS = _field_checks(CustomerCreate)


def _fast_values(raw: dict[str, Any]) -> dict[str, Any] | None:
    """The row's normalised values when every field passes its check; None to let CustomerCreate decide."""
    values: dict[str, Any] = {}
    for name, value in raw.items():
        if value is None:
            continue
        check = _CHECKS.get(name)
        if check is None:
            return None
        clean = check(value)
        if clean is _INVALID:
            return None
        values[name] = clean
    return values


def whole_names(values: dict[str, Any]) -> dict[str, Any]:
    """The whole name and reading composed from the family and given parts, as the service composes them."""
    return {
        "full_name": full_name(values.get("family_name"), values.get("given_name")),
        "full_name_kana": full_name(values.get("family_name_kana"), values.get("given_name_kana")) or None,
    }
