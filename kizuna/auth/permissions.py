"""The one permission table. API endpoints, UI pages and the CLI all ask ``require`` here."""

from __future__ import annotations

from dataclasses import dataclass, replace

from kizuna.errors import PermissionDenied

ROLES = ("admin", "manager", "marketer", "sales", "support", "viewer")

# Domains whose records follow the read/write/delete pattern.
DOMAINS = ("customers", "companies", "products", "orders", "events", "notes", "consents")

# Analyses show aggregates of what every role may already read, so every role may run them; segments too
# (who is in which segment), and a segment's members are customers every role may read.
_READ_ALL = {f"{d}:read" for d in DOMAINS} | {"analytics:read", "segments:read"}
# Journeys, campaigns, templates and the message log: every role may see what the team sends to customers.
_READ_ALL |= {"journeys:read", "campaigns:read", "templates:read", "messages:read"}
# Building and sending marketing: marketers, managers and admins. Suppressions (an unsubscribe asked for by phone,
# a bounce) are also kept by support. Channel credentials, sender identity and the webhook allow-list: admins.
_MARKETING = {"journeys:write", "campaigns:write", "templates:write", "suppressions:write"}
# Sales (kizuna/sales/access.py): every role reads pipelines, deals, activities and tasks. ``deals:write`` lets a
# rep edit their own deals and their team's; ``deals:write_all`` (managers, admins) any deal. Calls and tasks
# are logged by whoever talks to customers (sales and support).
_READ_ALL |= {"pipelines:read", "deals:read", "activities:read", "tasks:read"}
_SALES = {"deals:write", "activities:write", "tasks:write"}
# Training the scoring model and editing its fallback rules (kizuna/sales/scoring): managers and admins.
_SALES_LEAD = _SALES | {"deals:write_all", "pipelines:manage", "teams:manage", "scoring:manage"}
# Inquiry desk (kizuna/inquiries): everyone reads tickets; support, managers and admins work them (their own
# teams' tickets; managers and admins any, with ``inquiries:write_all``); whoever talks to customers may open one;
# managers and admins keep the categories and macros.
_READ_ALL |= {"inquiries:read"}
_DESK = {"inquiries:create", "inquiries:write"}
_DESK_LEAD = _DESK | {"inquiries:write_all", "inquiries:manage"}
# NPS surveys (kizuna/surveys): every role reads the reports; marketers, managers and admins run the surveys.
_READ_ALL |= {"surveys:read"}
_MARKETING |= {"surveys:write"}


# The FAQ knowledge base and the website chat (kizuna/knowledge, kizuna/chat): every role reads articles and
# chats; support and admins write articles and answer chats; admins choose the sites that may embed the chat.
_READ_ALL |= {"knowledge:read", "chats:read"}
_CHAT_DESK = {"knowledge:write", "chats:answer"}


def _grant(*domains: str, verbs: tuple[str, ...] = ("write",)) -> set[str]:
    return {f"{d}:{v}" for d in domains for v in verbs}


PERMISSIONS: dict[str, frozenset[str]] = {
    "viewer": frozenset(_READ_ALL),
    "support": frozenset(
        _READ_ALL
        | _grant("customers", "notes", "events", "consents")
        | {"suppressions:write", "activities:write", "tasks:write"}
        | _DESK
        | _CHAT_DESK
    ),
    "sales": frozenset(
        _READ_ALL | _grant("customers", "companies", "notes", "events", "orders") | _SALES | {"inquiries:create"}
    ),
    "marketer": frozenset(
        _READ_ALL
        | _grant("customers", "events", "consents", "notes")
        | {"data:export", "data:import", "analytics:refresh", "segments:write"}
        | _MARKETING
    ),
    "manager": frozenset(
        _READ_ALL
        | _grant(*DOMAINS)
        | _grant(*DOMAINS, verbs=("delete",))
        | {"data:export", "data:import", "customers:merge", "analytics:refresh", "segments:write"}
        | _MARKETING
        | _SALES_LEAD
        | _DESK_LEAD
        | _CHAT_DESK
    ),
    "admin": frozenset(
        _READ_ALL
        | _grant(*DOMAINS)
        | _grant(*DOMAINS, verbs=("delete",))
        | {"data:export", "data:import", "customers:merge", "users:manage", "audit:read", "tokens:manage"}
        | {"outbox:manage", "analytics:refresh", "segments:write"}
        | _MARKETING
        | {"channels:manage", "sources:manage"}
        # Custom fields of customers, companies and deals (kizuna/fields): what every form and list shows.
        | {"fields:manage"}
        # Third-party provision records (APPI) and their purge; whole-table exports for a warehouse.
        | {"privacy:read", "privacy:manage", "tables:export"}
        | _SALES_LEAD
        | _DESK_LEAD
        | _CHAT_DESK
        | {"chats:manage"}
        # A data-subject access export (kizuna/privacy/subject_export.py): everything held about one person, in one
        # file. Admins only, as the provision records: there is no privacy officer role yet.
        | {"customers:export_subject"}
    ),
}


@dataclass(frozen=True)
class Actor:
    """Who is acting: a signed-in user, a token's user, or the system (CLI, worker, demo)."""

    label: str
    role: str
    user_id: int | None = None
    # Where the change comes from (api, ui, import, tracking, cli, worker, system): written on every outbox
    # message, so that journeys and webhooks can tell live activity from backfilled history.
    origin: str = "api"

    @classmethod
    def system(cls, what: str, *, origin: str = "system") -> Actor:
        return cls(label=f"system:{what}", role="admin", origin=origin)

    def via(self, origin: str) -> Actor:
        """The same actor, acting through another channel (the UI, an import ...)."""
        return replace(self, origin=origin)

    def can(self, permission: str) -> bool:
        return permission in PERMISSIONS.get(self.role, frozenset())


def require(actor: Actor, permission: str) -> None:
    if not actor.can(permission):
        raise PermissionDenied(f"role '{actor.role}' may not {permission.replace(':', ' ')}")
