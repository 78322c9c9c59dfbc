"""The OpenAPI document with the error answers each operation really gives, all in the one error shape."""

from __future__ import annotations

import copy
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "field"],
            "properties": {
                "code": {"type": "string", "examples": ["invalid"]},
                "message": {"type": "string", "description": "What went wrong, in words a user can act on."},
                "field": {"type": ["string", "null"], "description": "The field or parameter at fault, if one."},
            },
        }
    },
}

DESCRIPTIONS = {
    "400": "The body could not be parsed at all",
    "401": "No valid API token",
    "403": "The token's role may not do this",
    "404": "No such record",
    "409": "Conflict: a stale `version` field or a value that is already taken",
    "412": "Precondition failed: the If-Match names an older version",
    "413": "Request body too large",
    "422": "Invalid input: the field at fault is named",
    "428": "Precondition required: send If-Match (or a `version` field where allowed)",
    "429": "Too many attempts",
}


def error_codes(path: str, method: str, operation: dict[str, Any]) -> set[str]:
    """The 4xx answers of one operation, from what the edge and the services do for its shape.

    Every API operation needs a token (401) and a role (403) and validates its parameters (422); a path
    naming a record can miss it (404); a body can be too large (413); a create can hit a taken unique value
    (409). An operation that declares ``If-Match`` needs it (428) and refuses a stale one (412); an update
    also takes a ``version`` field instead (409 when stale).
    """
    codes = {"401", "403", "422"}
    if "{" in path:
        codes.add("404")
    if method in ("post", "patch", "put") and "requestBody" in operation:
        # 400: a body the JSON parser itself gives up on (nested deeper than it recurses).
        codes |= {"400", "413"}
    if method == "post":
        codes.add("409")
    takes_if_match = any(
        p.get("in") == "header" and p.get("name", "").lower() == "if-match" for p in operation.get("parameters", [])
    )
    if takes_if_match:
        codes |= {"412", "428"}
    if method == "patch":
        codes.add("409")
    return codes


# The schemas whose ``attributes`` object lists the custom fields of each entity (kizuna/fields).
CUSTOM_FIELD_SCHEMAS = {
    "customer": ("CustomerRead", "CustomerCreate", "CustomerUpdate"),
    "company": ("CompanyRead", "CompanyCreate", "CompanyUpdate"),
    "deal": ("DealRead", "DealCreate", "DealUpdate"),
}


def _field_schema(spec: Any) -> dict[str, Any]:
    """The JSON Schema of one custom field's stored value."""
    out: dict[str, Any] = {"title": spec.label}
    match spec.type:
        case "number":
            out["type"] = "number"
        case "user":
            out |= {"type": "integer", "description": "The id of a user."}
        case "date":
            out |= {"type": "string", "format": "date"}
        case "url":
            out |= {"type": "string", "format": "uri"}
        case "choice":
            out |= {"type": "string", "enum": list(spec.choices)}
        case "multi_choice":
            out |= {"type": "array", "items": {"type": "string", "enum": list(spec.choices)}}
        case _:
            out["type"] = "string"
    return out


def with_custom_fields(base: dict[str, Any], specs: list[Any]) -> dict[str, Any]:
    """``base`` with each entity's custom fields as properties of its schemas' ``attributes`` object.

    Only the changed parts are copied: the cached document stays as built.
    """
    if not specs:
        return base
    schema = dict(base)
    components = dict(schema["components"])
    schemas = dict(components["schemas"])
    for entity, names in CUSTOM_FIELD_SCHEMAS.items():
        props = {s.key: _field_schema(s) for s in specs if s.entity == entity}
        if not props:
            continue
        for name in names:
            if name not in schemas:
                continue
            model = copy.deepcopy(schemas[name])
            attributes = model.get("properties", {}).get("attributes")
            if attributes is None:
                continue
            for branch in attributes.get("anyOf", [attributes]):
                if branch.get("type") == "object":
                    branch["properties"] = props
            schemas[name] = model
    components["schemas"] = schemas
    schema["components"] = components
    return schema


def install(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        from kizuna.fields import registry

        # The custom fields are read at each request of the document, so a field added shows at once.
        return with_custom_fields(base(), registry.all_specs(app.state.engine))

    def base() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components["Error"] = ERROR_SCHEMA
        ref = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
        for path, operations in schema.get("paths", {}).items():
            for method, operation in operations.items():
                responses = operation.setdefault("responses", {})
                for code in sorted(error_codes(path, method, operation)):
                    # FastAPI's own 422 describes a body this API never sends; ours is the error shape.
                    responses[code] = {"description": DESCRIPTIONS[code], "content": ref}
                for code, answer in responses.items():
                    # Errors a route declares itself (e.g. 429) come in the same shape.
                    if code.startswith("4") and "content" not in answer:
                        answer["content"] = ref
        for unused in ("HTTPValidationError", "ValidationError"):
            components.pop(unused, None)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
