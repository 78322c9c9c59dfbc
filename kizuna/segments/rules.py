"""The segment rule language: JSON validated by Pydantic into a tree of conditions.

A rule is one node; nodes nest through ``all`` / ``any`` / ``not``::

    {"all": [
        {"attribute": "prefecture", "op": "eq", "value": "東京都"},
        {"event": "page_view", "min_count": 3, "within_days": 30, "properties": {"path": "/sale"}},
        {"metric": "rfm_segment", "op": "in", "value": ["Champions", "Loyal"]}
    ]}

Each node is recognised by the one key that names its kind (``attribute``, ``tag``, ``event`` ...), so the
unions below are discriminated by key, and an error names the path of the bad part: ``all[2].event.within_days:
must be a positive integer``. Validation checks shape and types here; what needs the database (an unknown
segment id, a cycle between segments) is checked by ``compile.check_references``. The compiler is in
compile.py.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PositiveInt,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    Tag,
    TypeAdapter,
    field_validator,
    model_validator,
)
from pydantic import ValidationError as PydanticError

from kizuna.analytics.periods import today
from kizuna.errors import ValidationError

# Customer fields a rule may compare (the customer filter set's fields, by the same names); tags, consent and
# the metrics have conditions of their own, and ``status`` is not a condition: segments hold active customers.
ATTRIBUTES = (
    "id",
    "external_id",
    "email",
    "phone",
    "full_name",
    "full_name_kana",
    "gender",
    "birth_date",
    "prefecture",
    "city",
    "country",
    "company_id",
    "owner_id",
    "lifecycle_stage",
    "locale",
    "source",
    "created_at",
    "updated_at",
)
CUSTOM_ATTRIBUTE = re.compile(r"attributes\.[a-z][a-z0-9_]{0,63}")
TEXT_OPS = ("eq", "ne", "in", "not_in", "contains", "starts_with", "is_empty", "is_not_empty")
ORDERED_OPS = ("eq", "ne", "in", "not_in", "lt", "lte", "gt", "gte", "between", "is_empty", "is_not_empty")
Op = Literal[
    "eq",
    "ne",
    "in",
    "not_in",
    "lt",
    "lte",
    "gt",
    "gte",
    "contains",
    "starts_with",
    "is_empty",
    "is_not_empty",
    "between",
]
METRICS = ("rfm_segment", "decile", "clv", "churn_risk", "p_alive")
ORDER_METRICS = ("total_spend", "order_count", "last_order_date")
PRODUCT_FIELDS = ("category", "brand", "taste", "product_sku")
CHANNELS = ("email", "sms", "line", "phone", "post", "push")
# Event property names become JSON paths: plain names only.
_PROPERTY = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")
_RELATIVE = re.compile(r"^([+-]?)(\d{1,5})d$")
# How deep rules nest: deeper is no real rule, and each level is a Python call while compiling.
MAX_DEPTH = 12
MAX_ITEMS = 100


class _Node(BaseModel):
    # Strict: "3" is not the number 3 in a rule (the JSON says which it is).
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, populate_by_name=True)


class RelativeDate(_Node):
    """A day relative to today in KIZUNA_DEFAULT_TIMEZONE: ``{"days_ago": 30}`` or ``{"relative": "-30d"}``."""

    days_ago: int | None = Field(default=None, ge=-36_500, le=36_500)
    relative: str | None = None

    @field_validator("relative")
    @classmethod
    def _relative(cls, value: str | None) -> str | None:
        if value is not None and (value == "today" or _RELATIVE.match(value)) is None:
            raise ValueError("must look like -30d, +7d or today")
        return value

    @model_validator(mode="after")
    def _one(self) -> RelativeDate:
        if (self.days_ago is None) == (self.relative is None):
            raise ValueError("give either days_ago or relative")
        return self

    def offset(self) -> int:
        """Days from today (negative: in the past)."""
        if self.days_ago is not None:
            return -self.days_ago
        match = _RELATIVE.match(self.relative or "")
        if match is None:  # "today"
            return 0
        sign, days = match.groups()
        return -int(days) if sign == "-" else int(days)

    def day(self) -> dt.date:
        return today() + dt.timedelta(days=self.offset())


def _scalar(item: Any) -> Any:
    if isinstance(item, dict):
        return RelativeDate.model_validate(item)
    if isinstance(item, float) and not item == item or item in (float("inf"), float("-inf")):
        raise ValueError("must be a finite number")
    if item is None or isinstance(item, (bool, int, float, str)):
        return item
    raise ValueError('must be text, a number, true/false or a relative date such as {"days_ago": 30}')


def _value(value: Any) -> Any:
    """A comparison's value: a scalar, a relative date, or a list of them (``in``, ``between``)."""
    if isinstance(value, (list, tuple)):
        if len(value) > MAX_ITEMS:
            raise ValueError(f"lists at most {MAX_ITEMS} values")
        return [_scalar(v) for v in value]
    return _scalar(value)


def _fits_op(op: str, value: Any) -> None:
    if op in ("is_empty", "is_not_empty"):
        if value is not None:
            raise ValueError(f"'{op}' takes no value")
    elif op in ("in", "not_in"):
        if not isinstance(value, list) or not value:
            raise ValueError(f"'{op}' needs a non-empty list as value")
    elif op == "between":
        if not isinstance(value, list) or len(value) != 2:
            raise ValueError("'between' needs a list of two values [low, high]")
    elif value is None or isinstance(value, list):
        raise ValueError(f"'{op}' needs a single value")


class All(_Node):
    all: list[Rule] = Field(min_length=1, max_length=MAX_ITEMS)


class Any_(_Node):
    any: list[Rule] = Field(alias="any", min_length=1, max_length=MAX_ITEMS)


class Not(_Node):
    not_: Rule = Field(alias="not")


class _Comparison(_Node):
    """Shared checks of ``op`` + ``value`` (the subclasses declare both after their kind's key)."""

    @field_validator("value", mode="before", check_fields=False)
    @classmethod
    def _parse_value(cls, value: Any) -> Any:
        return _value(value)

    @model_validator(mode="after")
    def _value_fits_op(self) -> _Comparison:
        _fits_op(self.op, self.value)  # type: ignore[attr-defined]
        return self


class Attribute(_Comparison):
    attribute: str
    op: Op
    value: Any = None

    @field_validator("attribute")
    @classmethod
    def _known(cls, value: str) -> str:
        # ``attributes.<key>``: a custom field, checked against its definition when the rule is compiled.
        if value not in ATTRIBUTES and not CUSTOM_ATTRIBUTE.fullmatch(value):
            raise ValueError(
                f"unknown attribute '{value}'; one of {', '.join(ATTRIBUTES)}, or attributes.<key> of a custom field"
            )
        return value


class TagCondition(_Node):
    tag: str = Field(min_length=1, max_length=100)


class ConsentSpec(_Node):
    channel: Literal["email", "sms", "line", "phone", "post", "push"]
    purpose: str = Field(default="marketing", min_length=1, max_length=32)


class ConsentCondition(_Node):
    consent: ConsentSpec


class EventCondition(_Node):
    """Did (or, ``negate``, did not) do ``event`` at least ``min_count`` times within the last ``within_days``
    days (all time when omitted), counting only events whose properties equal ``properties``."""

    event: str = Field(min_length=1, max_length=64)
    min_count: PositiveInt = 1
    within_days: PositiveInt | None = Field(default=None, le=36_500)
    properties: dict[str, StrictBool | StrictInt | StrictFloat | StrictStr] = Field(default_factory=dict, max_length=20)
    negate: StrictBool = False

    @field_validator("properties")
    @classmethod
    def _names(cls, value: dict[str, Any]) -> dict[str, Any]:
        for name in value:
            if not _PROPERTY.match(name):
                raise ValueError(f"property name '{name}' must be letters, digits, _ or - (at most 64)")
        return value


class OrdersSpec(_Comparison):
    metric: Literal["total_spend", "order_count", "last_order_date"]
    op: Op
    value: Any = None


class OrdersCondition(_Node):
    orders: OrdersSpec


class BoughtSpec(_Node):
    category: str | None = Field(default=None, min_length=1, max_length=100)
    brand: str | None = Field(default=None, min_length=1, max_length=100)
    taste: str | None = Field(default=None, min_length=1, max_length=100)
    product_sku: str | None = Field(default=None, min_length=1, max_length=128)
    within_days: PositiveInt | None = Field(default=None, le=36_500)

    @model_validator(mode="after")
    def _one(self) -> BoughtSpec:
        given = [f for f in PRODUCT_FIELDS if getattr(self, f) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of {', '.join(PRODUCT_FIELDS)}")
        return self

    @property
    def field(self) -> str:
        return next(f for f in PRODUCT_FIELDS if getattr(self, f) is not None)


class BoughtCondition(_Node):
    bought: BoughtSpec


class MetricCondition(_Comparison):
    metric: Literal["rfm_segment", "decile", "clv", "churn_risk", "p_alive"]
    op: Op
    value: Any = None


class SegmentCondition(_Node):
    segment: PositiveInt


_KINDS = ("all", "any", "not", "attribute", "tag", "consent", "event", "orders", "bought", "metric", "segment")


def _kind(node: Any) -> str | None:
    """The node's kind: the one key among ``_KINDS`` it has (None makes Pydantic report it)."""
    if isinstance(node, BaseModel):
        node = node.model_dump(by_alias=True)
    if not isinstance(node, dict):
        return None
    found = [k for k in _KINDS if k in node]
    # ``metric`` also names the field of an ``orders`` spec, but that sits one level down.
    return found[0] if len(found) == 1 else None


Rule = Annotated[
    Annotated[All, Tag("all")]
    | Annotated[Any_, Tag("any")]
    | Annotated[Not, Tag("not")]
    | Annotated[Attribute, Tag("attribute")]
    | Annotated[TagCondition, Tag("tag")]
    | Annotated[ConsentCondition, Tag("consent")]
    | Annotated[EventCondition, Tag("event")]
    | Annotated[OrdersCondition, Tag("orders")]
    | Annotated[BoughtCondition, Tag("bought")]
    | Annotated[MetricCondition, Tag("metric")]
    | Annotated[SegmentCondition, Tag("segment")],
    Discriminator(
        _kind,
        custom_error_type="unknown_condition",
        custom_error_message="not a condition: give exactly one of " + ", ".join(_KINDS),
    ),
]

for _model in (All, Any_, Not):
    _model.model_rebuild()
_ADAPTER: TypeAdapter[Any] = TypeAdapter(Rule)


class SegmentRuleError(ValidationError):
    """A rule that cannot be used, with the path of its bad part (``all[2].event.within_days``)."""

    def __init__(self, path: str, problem: str, *, kind: str = "invalid", **params: Any) -> None:
        where = f"{path}: " if path else ""
        super().__init__(
            f"rule {where}{problem}",
            field="rule" + (f".{path}" if path and not path.startswith("[") else path),
            key=f"error.segment_rule_{kind}",
            params={"path": path or "rule", "problem": problem, **params},
        )
        self.path = path
        self.problem = problem


def path_of(loc: tuple[Any, ...]) -> str:
    """``('all', 2, 'event', 'within_days')`` -> ``all[2].event.within_days``; a union's tag that repeats the
    field after it (``orders.orders.metric``) is said once, and the ``not`` field's Python name is hidden."""
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
            continue
        name = "not" if item == "not_" else str(item)
        if name.startswith("function-") or (parts and parts[-1] == name):
            continue
        parts.append(name)
    out = ""
    for part in parts:
        out += part if part.startswith("[") or not out else f".{part}"
    return out


def _problem(error: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    """(message, kind, params) for one Pydantic error, in words a user can act on."""
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind == "extra_forbidden":
        return "unknown field", "unknown_field", {}
    if kind == "missing":
        return "is required", "required", {}
    if kind == "greater_than" and ctx.get("gt") == 0:
        return "must be a positive integer", "positive_integer", {}
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return "must be an integer", "wrong_type", {"expected": "integer"}
    if kind in ("string_type",):
        return "must be text", "wrong_type", {"expected": "text"}
    if kind in ("bool_type",):
        return "must be true or false", "wrong_type", {"expected": "boolean"}
    if kind in ("list_type",):
        return "must be a list", "wrong_type", {"expected": "list"}
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return "must be an object", "wrong_type", {"expected": "object"}
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected', '')}", "one_of", {"expected": str(ctx.get("expected", ""))}
    if kind == "unknown_condition":
        return error["msg"], "unknown_condition", {}
    message = str(error["msg"]).removeprefix("Value error, ")
    return message[0].lower() + message[1:] if message else "is not valid", "invalid", {}


def _depth(node: Any, level: int = 0) -> int:
    if level > MAX_DEPTH:
        return level
    if isinstance(node, dict):
        return max((_depth(v, level + 1) for v in node.values()), default=level)
    if isinstance(node, list):
        return max((_depth(v, level) for v in node), default=level)
    return level


def parse_rule(raw: Any) -> Any:
    """A validated rule from JSON text or already-decoded JSON; ``SegmentRuleError`` names the bad part."""
    if isinstance(raw, (str, bytes)):
        try:
            raw = json.loads(raw)
        except ValueError as exc:
            line = getattr(exc, "lineno", None)
            col = getattr(exc, "colno", None)
            where = f" at line {line}, column {col}" if line else ""
            raise SegmentRuleError(
                "", f"is not valid JSON{where}", kind="malformed_json", line=line, column=col
            ) from exc
    # Each nested level is a call in Pydantic and in the compiler: a deep rule is refused before either.
    if _depth(raw) > MAX_DEPTH * 2:
        raise SegmentRuleError("", f"nests deeper than {MAX_DEPTH} levels", kind="too_deep", limit=MAX_DEPTH)
    try:
        return _ADAPTER.validate_python(raw)
    except PydanticError as exc:
        errors = exc.errors(include_url=False)
        first = errors[0]
        message, kind, params = _problem(first)
        raise SegmentRuleError(path_of(tuple(first["loc"])), message, kind=kind, **params) from exc


def dump_rule(rule: Any) -> dict[str, Any]:
    """The rule as JSON-ready data (what is stored on the segment)."""
    return _ADAPTER.dump_python(rule, mode="json", by_alias=True, exclude_defaults=True)


def walk(rule: Any) -> list[Any]:
    """Every node of the rule, depth first."""
    out = [rule]
    if isinstance(rule, All):
        for child in rule.all:
            out.extend(walk(child))
    elif isinstance(rule, Any_):
        for child in rule.any:
            out.extend(walk(child))
    elif isinstance(rule, Not):
        out.extend(walk(rule.not_))
    return out


def referenced_segments(rule: Any) -> list[int]:
    return [node.segment for node in walk(rule) if isinstance(node, SegmentCondition)]


def is_time_relative(rule: Any) -> bool:
    """Whether the rule's answer moves with the calendar alone ("within 30 days", "30 days ago"), so that a
    customer can enter or leave without any new data about them: such rules need a full refresh every day."""
    for node in walk(rule):
        if isinstance(node, (EventCondition, BoughtCondition)):
            spec = node.bought if isinstance(node, BoughtCondition) else node
            if spec.within_days is not None:
                return True
        value = getattr(node, "value", None)
        if isinstance(node, OrdersCondition):
            value = node.orders.value
        values = value if isinstance(value, list) else [value]
        if any(isinstance(v, RelativeDate) for v in values):
            return True
    return False
