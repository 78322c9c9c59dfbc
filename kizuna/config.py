"""One typed Settings object read from the environment (``KIZUNA_*``).

Nothing else in Kizuna reads ``os.environ``; every setting is documented in the README.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KIZUNA_", extra="ignore")

    home: Path = Field(default=Path("kizuna-data"), description="Folder for the embedded database and reports.")
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; empty means SQLite in $KIZUNA_HOME/kizuna.db.",
    )
    default_region: str = Field(default="JP", description="Region used to parse phone numbers without +country.")
    default_timezone: str = Field(default="Asia/Tokyo", description="Time zone given to new customers.")
    default_currency: str = Field(default="JPY", description="Currency assumed when an import omits one.")
    default_locale: str = Field(default="ja", description="UI language when a user has not chosen one (ja or en).")
    session_hours: int = Field(default=12, description="How long a UI login lasts.")
    signin_account_failures: int = Field(
        default=10, description="Wrong passwords in a row that lock an account (an admin can unlock it)."
    )
    signin_lockout_minutes: int = Field(
        default=30, description="How long a locked account stays locked; 0 keeps it locked until an admin unlocks it."
    )
    signin_address_failures: int = Field(
        default=50, description="Failed sign-ins from one address within the window that block the address."
    )
    signin_window_minutes: int = Field(default=15, description="The window of the per-address sign-in limit.")
    signin_parallel_checks: int = Field(
        default=1, description="Passwords checked at the same time (each costs 64 MiB and a core for ~0.1 s)."
    )
    secure_cookies: bool = Field(default=False, description="Mark cookies Secure (set when served over HTTPS).")
    max_body_bytes: int = Field(default=5_000_000, description="Largest JSON request body accepted.")
    json_max_depth: int = Field(
        default=32, description="Deepest nesting accepted in free-form JSON (attributes, event properties)."
    )
    json_max_bytes: int = Field(
        default=65_536, description="Largest free-form JSON value (one attributes or properties object), in bytes."
    )
    max_tags_per_customer: int = Field(
        default=50, description="Most tags one customer may carry (and so one request may set on a customer)."
    )
    max_new_tags_per_request: int = Field(
        default=100, description="Most tags that one request or import batch may create (tags are shared)."
    )
    import_batch_size: int = Field(default=20000, description="Rows committed together by an import.")
    import_upload_max_bytes: int = Field(
        default=200_000_000, description="Largest file accepted by an import upload (UI and API), in bytes."
    )
    import_inline_rows: int = Field(
        default=5000,
        description="Uploaded imports of up to this many rows run in the request; bigger ones in the worker.",
    )
    page_size_max: int = Field(default=500, description="Largest page a list endpoint returns.")
    hot_reads_per_process: int = Field(
        default=2, ge=1, description="Customer and timeline API reads run at once per server process (PostgreSQL)."
    )
    outbox_lease_seconds: int = Field(default=60, description="How long a worker holds a delivery it claimed.")
    outbox_max_attempts: int = Field(default=10, description="Failed attempts after which a delivery is dead.")
    extra_subscribers: str = Field(
        default="", description="Comma-separated modules declaring more outbox subscribers (plugins)."
    )
    anonymous_retention_days: int = Field(
        default=90,
        ge=1,
        description="Days an anonymous visitor profile (tracked, never identified) is kept after its last event; "
        "`kizuna sources purge-anonymous` removes older ones.",
    )
    scoring_retrain_days: int = Field(
        default=7,
        ge=0,
        description="Days between the worker's retrainings of the lead and deal scoring model (0: only on demand).",
    )
    segment_refresh_minutes: int = Field(
        default=5, ge=1, description="Minutes between the worker's incremental refreshes of dynamic segments."
    )
    secret_key: str = Field(
        default="",
        description="The one secret every signing key (tracking links, unsubscribe tokens, webhook signatures) and the "
        "encryption of stored credentials derive from; empty means a random key generated once into "
        "$KIZUNA_HOME/secret_key. Keep it secret and back it up: changing it breaks links already sent and "
        "makes stored credentials unreadable.",
    )
    line_api_base: str = Field(
        default="https://api.line.me",
        description="Base URL of the LINE Messaging API (a stand-in server in tests); the LINE settings page "
        "overrides it.",
    )
    line_channel_token: str = Field(
        default="",
        description="LINE channel access token, when not saved (encrypted) on the LINE settings page.",
    )
    line_channel_secret: str = Field(
        default="",
        description="LINE channel secret (verifies the x-line-signature of LINE's webhooks), when not saved on the "
        "LINE settings page.",
    )
    line_timeout_seconds: float = Field(default=10.0, gt=0, description="Longest wait for an answer from LINE.")
    line_link_days: int = Field(
        default=7, ge=1, description="Days a signed LINE link (sent to a customer to link their LINE account) works."
    )
    webhook_allow: str = Field(
        default="",
        description="Comma-separated hosts, addresses or networks webhooks may reach although they are not public "
        "(e.g. hooks.intranet,10.0.0.0/8); admins can also allow-list them on the webhooks page.",
    )
    webhook_connect_timeout_seconds: float = Field(
        default=3.0, gt=0, description="Longest wait to connect to a webhook receiver."
    )
    webhook_read_timeout_seconds: float = Field(
        default=10.0, gt=0, description="Longest wait for a webhook receiver's answer once connected."
    )
    smtp_url: str = Field(
        default="",
        description="SMTP server for email, e.g. smtp://user:pass@host:587?starttls=1 or smtps://user:pass@host:465; "
        "an SMTP server saved on the email settings page takes precedence.",
    )
    public_url: str = Field(
        default="",
        description="The address customers reach this Kizuna at (https://crm.example.com): the base of unsubscribe, "
        "open-tracking and click links in mails. Marketing mail is refused while it is empty.",
    )
    send_batch_size: int = Field(default=500, ge=1, description="Messages the sender claims at a time.")
    send_lease_seconds: int = Field(
        default=120, ge=1, description="How long the sender holds the messages it claimed before another may take them."
    )
    send_max_attempts: int = Field(
        default=8, ge=1, description="Attempts after which a message that keeps failing fails."
    )
    send_retry_seconds: int = Field(
        default=60,
        ge=1,
        description="Wait before the first retry of a temporary failure; doubles each time (up to 6 h).",
    )
    smtp_timeout_seconds: float = Field(default=30.0, gt=0, description="How long an SMTP answer is waited for.")
    smtp_connections: int = Field(
        # 2 left the sender waiting on the server ~20% of the time; 4 sends a 100,000-customer journey 1.2x faster
        # (benchmarks/journey_email.py) and stays well inside the per-client limits of common relays.
        default=4,
        ge=1,
        le=16,
        description="SMTP connections a sender keeps open at once: while the server takes one mail, the next is "
        "already under way on another (still only one mail handed over at a time).",
    )
    analytics_url: str = Field(
        default="",
        description="Ibis backend the analytics run on; empty means DuckDB in process, reading the database itself "
        "(e.g. postgres://user@host/db to run them in PostgreSQL, or a Spark/ClickHouse/BigQuery URL).",
    )
    # --- inquiry desk (kizuna/inquiries) ---
    inquiry_repeat_hours: int = Field(
        default=72,
        ge=0,
        description="A new inquiry from the same customer on the same category within this many hours of their last "
        "message is appended to their open ticket instead of opening another (0: never).",
    )
    inquiry_first_response_minutes: str = Field(
        default="urgent=60,high=240,normal=480,low=960",
        description="SLA first-response targets per priority, in working minutes (normal 480 = one business day).",
    )
    inquiry_resolution_minutes: str = Field(
        default="urgent=480,high=960,normal=2400,low=4800",
        description="SLA resolution targets per priority, in working minutes.",
    )
    inquiry_business_hours: str = Field(
        default="09:00-18:00",
        description="Working hours (default time zone, Monday to Friday) SLA clocks run in; empty: around the clock.",
    )
    inquiry_email_address: str = Field(
        default="",
        description="The support address replies come from and customers write to (empty: the sender identity's).",
    )
    inquiry_imap_host: str = Field(
        default="", description="IMAP server the worker reads inquiry mail from (empty: off)."
    )
    inquiry_imap_port: int = Field(default=993, description="IMAP port (993 for TLS, 143 for plain/STARTTLS).")
    inquiry_imap_ssl: bool = Field(default=True, description="Connect to IMAP over TLS.")
    inquiry_imap_user: str = Field(default="", description="IMAP user name.")
    inquiry_imap_password: str = Field(default="", description="IMAP password.")
    inquiry_imap_folder: str = Field(default="INBOX", description="IMAP folder read for new inquiry mail.")
    inquiry_imap_poll_seconds: int = Field(default=60, ge=5, description="How often the worker polls IMAP.")
    inquiry_form_min_seconds: int = Field(
        default=3,
        ge=0,
        description="The public inquiry form refuses a submission made sooner than this after the "
        "form was served (bots post at once).",
    )
    inquiry_form_max_hours: int = Field(default=24, ge=1, description="How long a served inquiry form stays valid.")
    inquiry_form_frame_ancestors: str = Field(
        default="*",
        description="Sites that may embed the public inquiry form in an iframe (CSP frame-ancestors), e.g. "
        "'https://shop.example.com'; 'none' forbids embedding.",
    )
    inquiry_mail_max_bytes: int = Field(default=10_000_000, description="Largest raw mail accepted by e-mail-in.")

    chat_messages_per_minute: int = Field(
        default=20, ge=1, description="Messages one website chat may send per minute (more are refused with 429)."
    )
    chat_starts_per_minute: int = Field(
        default=10, ge=1, description="Website chats one address may start per minute (more are refused with 429)."
    )

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.home / 'kizuna.db').resolve()}"

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")


@lru_cache
def get_settings() -> Settings:
    return Settings()
