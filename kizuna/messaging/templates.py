"""Rendering message content: sandboxed Jinja2 with personalisation, fallbacks and strict merge fields.

What a template may use (anything else is refused when it is saved):

- ``customer``: the customer's fields (``given_name``, ``email``, ``prefecture``, ``attributes.plan``, ``tags``,
  ``company_name`` ...). A field this customer has no value for renders empty and is replaced by ``default``:
  ``{{ customer.given_name | default("お客様") }}``. A field that does not exist (``customer.nmae``) or an
  attribute key missing without a ``default`` is an error: the message fails with ``render_error`` and says which.
- ``metrics``: the customer's persisted metrics (``rfm_segment``, ``decile``, ``order_count``, ``clv`` ...).
- ``recommendations(k)``: up to ``k`` (at most 10) products for the customer (``kizuna.analytics.recommend``),
  computed once per batch and only when a template of the batch calls it.
- ``context``: what the creator of the message passed (the order of an order confirmation, a journey's event).
- ``unsubscribe_url`` (marketing mail), ``sender`` (name, address, postal_address, contact), ``message`` (id,
  source, variant).
- ``nps_links(survey_id)``: the 11 signed answer links of an NPS survey for this customer and message, as
  ``[{"score": 0, "url": ...}, ..., {"score": 10, "url": ...}]`` (``kizuna.surveys.links``):
  ``{% for l in nps_links(3) %}<a href="{{ l.url }}">{{ l.score }}</a> {% endfor %}``.

Templates run in Jinja's immutable sandbox on plain dicts and lists (never ORM objects), so a template written in
the UI can read values but not reach Python internals or change anything.
"""

from __future__ import annotations

import html as html_lib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from jinja2 import ChainableUndefined, StrictUndefined, TemplateSyntaxError, Undefined, UndefinedError, meta, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError
from sqlalchemy import select
from sqlalchemy.orm import Session

from kizuna.errors import KizunaError, ValidationError

TOP_LEVEL = (
    "customer", "metrics", "recommendations", "context", "unsubscribe_url", "sender", "message", "nps_links",
)  # fmt: skip
CUSTOMER_FIELDS = (
    "id", "external_id", "email", "phone", "family_name", "given_name", "family_name_kana", "given_name_kana",
    "full_name", "full_name_kana", "birth_date", "gender", "postal_code", "prefecture", "city", "address_line",
    "country", "lifecycle_stage", "timezone", "locale", "source", "attributes", "created_at",
)  # fmt: skip
METRIC_FIELDS = (
    "order_count", "total_spend", "first_order_at", "last_order_at", "r", "f", "m", "rfm_segment", "decile",
    "top_category", "clv", "churn_risk", "p_alive", "expected_purchases",
)  # fmt: skip
MAX_RECOMMENDATIONS = 10
EMAIL_PARTS = ("subject", "html", "text")


class RenderError(KizunaError):
    """A template that cannot be rendered for this customer (a missing merge field, a failing expression)."""

    status_code = 422
    code = "render_error"


class Blank(Undefined):
    """A known field this customer has no value for: renders empty, and ``default(...)`` replaces it."""

    __slots__ = ()


def _finalize(value: Any) -> Any:
    return "" if value is None else value


def _env(autoescape: bool) -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(
        autoescape=autoescape, undefined=StrictUndefined, finalize=_finalize, keep_trailing_newline=True
    )
    return env


_ENVS = {True: _env(True), False: _env(False)}


@lru_cache(maxsize=1024)
def _compile(source: str, autoescape: bool) -> Any:
    template = _ENVS[autoescape].from_string(source)
    # Jinja keeps a template's globals as a ChainMap over the environment's and copies it on every render; one
    # flat dict (the environment's globals never change after start) saves that work on each of many mails.
    template.globals = dict(template.globals)
    return template


@dataclass(frozen=True)
class Parts:
    """What a template or a message's inline content holds: email parts, or a JSON body (LINE, webhook)."""

    subject: str = ""
    html: str = ""
    text: str = ""
    body: dict[str, Any] = field(default_factory=dict)
    # Email: the template's own From name/address and Reply-To (not templated), when it has them.
    sender: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, source: Any) -> Parts:
        """From a ``Template`` row or a message's ``content`` dict."""
        if isinstance(source, Mapping):
            body = {k: v for k, v in source.items() if k not in (*EMAIL_PARTS, "to", "sender")}
            return cls(
                subject=str(source.get("subject") or ""),
                html=str(source.get("html") or ""),
                text=str(source.get("text") or ""),
                body=dict(source.get("body") or body),
                sender=_sender(source.get("sender") or {}),
            )
        return cls(
            subject=source.subject or "",
            html=source.html or "",
            text=source.text or "",
            body=source.body or {},
            sender=_sender({k: getattr(source, k, "") for k in SENDER_FIELDS}),
        )

    def uses(self, name: str) -> bool:
        """Whether any part names the top-level variable ``name`` (e.g. ``recommendations``)."""
        return any(name in _names(source) for _, source, _ in self.sources())

    def sources(self) -> Iterable[tuple[str, str, bool]]:
        """(part, template source, autoescape) for every templated string."""
        if self.subject:
            yield "subject", self.subject, False
        if self.html:
            yield "html", self.html, True
        if self.text:
            yield "text", self.text, False
        yield from ((f"body.{path}", text, False) for path, text in _strings(self.body, ""))


SENDER_FIELDS = ("from_name", "from_address", "reply_to")


def _sender(values: Mapping[str, Any]) -> dict[str, str]:
    return {k: str(values[k]) for k in SENDER_FIELDS if isinstance(values, Mapping) and values.get(k)}


def _strings(value: Any, path: str) -> Iterable[tuple[str, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, Mapping):
        for k, v in value.items():
            yield from _strings(v, f"{path}.{k}" if path else str(k))
    elif isinstance(value, list):
        for n, v in enumerate(value):
            yield from _strings(v, f"{path}[{n}]")


@lru_cache(maxsize=1024)
def _names(source: str) -> frozenset[str]:
    return frozenset(meta.find_undeclared_variables(_ENVS[False].parse(source)))


# --- what a template sees ------------------------------------------------------------------------------------


def blanked(values: Mapping[str, Any], names: Iterable[str], prefix: str) -> dict[str, Any]:
    """``values`` for ``names``, with None and empty strings as ``Blank`` (so ``default`` applies)."""
    out: dict[str, Any] = {}
    for name in names:
        value = values.get(name)
        out[name] = _blank(prefix, name) if value is None or value == "" else value
    return out


@lru_cache(maxsize=256)
def _blank(prefix: str, name: str) -> Blank:
    # One per field, shared: a Blank holds nothing of the customer, and building thousands per batch showed.
    return Blank(name=f"{prefix}.{name}")


# A customer without metrics (no counted order yet): every field blank, one shared read-only dict.
_NO_METRICS = blanked({}, METRIC_FIELDS, "metrics")


def customer_variables(session: Session, customer_ids: list[int]) -> dict[int, dict[str, Any]]:
    """``customer`` and ``metrics`` for each customer, read in a few queries for the whole batch."""
    from kizuna.analytics.models import CustomerMetrics
    from kizuna.customers.models import Company, Customer, Tag, customer_tags

    ids = sorted(set(customer_ids))
    out: dict[int, dict[str, Any]] = {}
    if not ids:
        return out
    c = Customer.__table__.c
    m = CustomerMetrics.__table__.c
    for start in range(0, len(ids), 2000):
        chunk = ids[start : start + 2000]
        rows = session.execute(
            select(*[c[name] for name in CUSTOMER_FIELDS], Company.__table__.c.name.label("company_name"))
            .select_from(Customer.__table__)
            .outerjoin(Company.__table__, Company.__table__.c.id == c.company_id)
            .where(c.id.in_(chunk))
        )
        tags: dict[int, list[str]] = {}
        for cid, name in session.execute(
            select(customer_tags.c.customer_id, Tag.__table__.c.name)
            .join(Tag.__table__, Tag.__table__.c.id == customer_tags.c.tag_id)
            .where(customer_tags.c.customer_id.in_(chunk))
            .order_by(Tag.__table__.c.name)
        ):
            tags.setdefault(cid, []).append(name)
        metrics = {
            row.customer_id: blanked(row._mapping, METRIC_FIELDS, "metrics")
            for row in session.execute(
                select(m.customer_id, *[m[n] for n in METRIC_FIELDS]).where(m.customer_id.in_(chunk))
            )
        }
        for row in rows:
            values = dict(row._mapping)
            customer = blanked(values, (*CUSTOMER_FIELDS, "company_name"), "customer")
            customer["attributes"] = dict(values.get("attributes") or {})
            customer["tags"] = tags.get(row.id, [])
            out[row.id] = {
                "customer": customer,
                "metrics": metrics.get(row.id) or _NO_METRICS,
            }
    return out


def sample_variables() -> dict[str, Any]:
    """A customer with every field empty: what a template is checked against when no customer exists yet."""
    customer = blanked({}, (*CUSTOMER_FIELDS, "company_name"), "customer")
    customer["attributes"] = {}
    customer["tags"] = []
    return {"customer": customer, "metrics": blanked({}, METRIC_FIELDS, "metrics")}


def recommendations_for(products: list[dict[str, Any]]) -> Callable[..., list[dict[str, Any]]]:
    def recommendations(k: int = 3) -> list[dict[str, Any]]:
        return products[: max(0, min(int(k), MAX_RECOMMENDATIONS))]

    return recommendations


def batch_recommendations(session: Session, customer_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    """Up to ``MAX_RECOMMENDATIONS`` products per customer, as plain dicts, in one analytics query."""
    from kizuna.analytics import neighbors
    from kizuna.analytics.engine import run_on_store
    from kizuna.analytics.recommend import recommendations

    # The daily refresh's similarities when there are some, read by index; computing them reads every line.
    if neighbors.current(session) is not None:
        found = neighbors.recommendations_from_store(session, customer_ids, MAX_RECOMMENDATIONS)
    else:
        url = session.get_bind().engine.url.render_as_string(hide_password=False)
        found = run_on_store(recommendations, sorted(set(customer_ids)), MAX_RECOMMENDATIONS, database_url=url)
    return {cid: [p.model_dump() for p in products] for cid, products in found.items()}


# --- rendering ---------------------------------------------------------------------------------------------


def _render_one(part: str, source: str, autoescape: bool, variables: Mapping[str, Any]) -> str:
    try:
        return _compile(source, autoescape).render(variables)
    except TemplateSyntaxError as exc:
        raise RenderError(f"{part} line {exc.lineno}: {exc.message}", field=part) from exc
    except UndefinedError as exc:
        raise RenderError(f"{part}: {exc.message} (give it a fallback with | default(...))", field=part) from exc
    except SecurityError as exc:
        raise RenderError(f"{part}: not allowed in a template: {exc}", field=part) from exc
    except Exception as exc:  # noqa: BLE001 - any failing expression becomes the message's recorded reason
        raise RenderError(f"{part}: {type(exc).__name__}: {exc}", field=part) from exc


def _render_value(value: Any, path: str, variables: Mapping[str, Any]) -> Any:
    if isinstance(value, str):
        return _render_one(f"body.{path}" if path else "body", value, False, variables)
    if isinstance(value, Mapping):
        return {k: _render_value(v, f"{path}.{k}" if path else str(k), variables) for k, v in value.items()}
    if isinstance(value, list):
        return [_render_value(v, f"{path}[{n}]", variables) for n, v in enumerate(value)]
    return value


def render(parts: Parts, variables: Mapping[str, Any]) -> dict[str, Any]:
    """The rendered content: ``{subject, html, text}`` for email (text made from the HTML when none is given),
    or the rendered body's keys for LINE and webhooks. Raises ``RenderError`` naming the part at fault."""
    if parts.subject or parts.html or parts.text:
        subject = _render_one("subject", parts.subject, False, variables) if parts.subject else ""
        html = _render_one("html", parts.html, True, variables) if parts.html else ""
        text = _render_one("text", parts.text, False, variables) if parts.text else html_to_text(html)
        # A header must be one line: a merge field with a line break must not add headers to the mail.
        rendered = {"subject": " ".join(subject.split()), "html": html, "text": text}
        if parts.sender:
            rendered["sender"] = dict(parts.sender)
        return rendered
    return _render_value(parts.body, "", variables)


_BLOCK_END = re.compile(r"</(p|div|h[1-6]|li|tr|table)>|<br\s*/?>", re.IGNORECASE)
_TAG = re.compile(r"<[^>]+>")
_HIDDEN = re.compile(r"<(script|style)\b.*?</\1>", re.IGNORECASE | re.DOTALL)
_MANY_BLANK_LINES = re.compile(r"\n{3,}")
_LINK = re.compile(r"""<a\s[^>]*href=["']([^"']+)["'][^>]*>(.*?)</a>""", re.IGNORECASE | re.DOTALL)


def html_to_text(html: str) -> str:
    """A readable plain-text part from an HTML one (links kept as ``text (url)``)."""
    if not html:
        return ""
    text = _HIDDEN.sub("", html)
    text = _LINK.sub(lambda m: f"{_TAG.sub('', m.group(2)).strip()} ({m.group(1)})", text)
    text = _BLOCK_END.sub("\n", text)
    text = html_lib.unescape(_TAG.sub("", text))
    lines = [" ".join(line.split()) for line in text.splitlines()]
    return _MANY_BLANK_LINES.sub("\n\n", "\n".join(lines)).strip() + "\n"


# --- checks at save time ------------------------------------------------------------------------------------


def check_syntax(parts: Parts) -> None:
    """Every part parses and names only known top-level variables; ``ValidationError`` names the part."""
    for part, source, autoescape in parts.sources():
        try:
            ast = _ENVS[autoescape].parse(source)
        except TemplateSyntaxError as exc:
            raise ValidationError(f"{part} line {exc.lineno}: {exc.message}", field=part) from exc
        unknown = sorted(meta.find_undeclared_variables(ast) - set(TOP_LEVEL))
        if unknown:
            raise ValidationError(
                f"{part}: unknown variable {', '.join(unknown)}; a template may use {', '.join(TOP_LEVEL)}",
                field=part,
            )
        _check_calls(ast, part)


def _check_calls(ast: nodes.Template, part: str) -> None:
    for call in ast.find_all(nodes.Call):
        if isinstance(call.node, nodes.Name) and call.node.name not in ("recommendations", "range", "nps_links"):
            raise ValidationError(f"{part}: {call.node.name}(...) is not a function templates may call", field=part)


def check_render(parts: Parts, variables: Mapping[str, Any]) -> dict[str, Any]:
    """Render against a real customer's values, creator context unknown (any ``context.*`` is accepted)."""
    values = {**variables, "context": ChainableUndefined(name="context")}
    try:
        return render(parts, values)
    except RenderError as exc:
        raise ValidationError(exc.message, field=exc.field) from exc
