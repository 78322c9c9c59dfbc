"""The ``kizuna`` command: one sub-command group per domain. Commands parse options and call services."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from kizuna.analytics.cli import analytics_app
from kizuna.campaigns.cli import campaigns_app
from kizuna.cli_support import CLI, console
from kizuna.cli_support import fail as _fail
from kizuna.config import get_settings
from kizuna.customers.cli import duplicates_app
from kizuna.errors import KizunaError
from kizuna.exports.cli import export_app
from kizuna.imports.cli import imports_app
from kizuna.ingest.cli import sources_app
from kizuna.inquiries.cli import inquiries_app
from kizuna.journeys.cli import journeys_app
from kizuna.knowledge.cli import chats_app, knowledge_app
from kizuna.messaging.cli import messages_app
from kizuna.outbox.cli import outbox_app
from kizuna.privacy.cli import privacy_app
from kizuna.sales.cli import deals_app
from kizuna.sales.scoring.cli import scoring_app
from kizuna.segments.cli import segments_app
from kizuna.surveys.cli import surveys_app
from kizuna.webhooks.cli import webhooks_app

app = typer.Typer(help="Kizuna (絆) CRM.", no_args_is_help=True, pretty_exceptions_show_locals=False)
users_app = typer.Typer(help="Manage users.", no_args_is_help=True)
tokens_app = typer.Typer(help="Manage API tokens.", no_args_is_help=True)
app.add_typer(users_app, name="users")
app.add_typer(tokens_app, name="tokens")
app.add_typer(imports_app, name="import")
app.add_typer(outbox_app, name="outbox")
app.add_typer(duplicates_app, name="duplicates")
app.add_typer(analytics_app, name="analytics")
app.add_typer(segments_app, name="segments")
app.add_typer(campaigns_app, name="campaigns")
app.add_typer(journeys_app, name="journeys")
app.add_typer(messages_app, name="messages")
app.add_typer(sources_app, name="sources")
app.add_typer(export_app, name="export")
app.add_typer(privacy_app, name="privacy")
app.add_typer(webhooks_app, name="webhooks")
app.add_typer(deals_app, name="deals")
app.add_typer(scoring_app, name="scoring")
app.add_typer(inquiries_app, name="inquiries")
app.add_typer(surveys_app, name="surveys")
app.add_typer(knowledge_app, name="knowledge")
app.add_typer(chats_app, name="chats")


def _engine():  # noqa: ANN202
    from kizuna.customers.models import Customer
    from kizuna.db import ready_engine
    from kizuna.imports.bulk import restore_indexes

    engine = ready_engine()
    # An import killed mid-load may have left customer indexes dropped; put them back.
    restore_indexes(engine, Customer.__table__)
    return engine


@app.command()
def init() -> None:
    """Create the database, or migrate it to this version's schema."""
    _engine()
    settings = get_settings()
    console.print(f"database ready: [bold]{_safe_url(settings.resolved_database_url)}[/bold]")


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(help="Server processes.")] = 1,
    with_worker: Annotated[
        bool,
        typer.Option(
            "--worker/--no-worker",
            help="Also run one `kizuna worker` beside the server (background imports, duplicate scans, ...). "
            "Use --no-worker when workers run as their own service.",
        ),
    ] = True,
) -> None:
    """Serve the web UI and the API (and, unless --no-worker, one background worker)."""
    import os
    import subprocess
    import sys

    import uvicorn

    _engine()
    console.print(f"Kizuna on [bold]http://{host}:{port}[/bold]  (API docs: /api/docs)")
    # A team that runs one command expects an uploaded import or a duplicate scan to run: without a worker they
    # would wait forever. The worker is a process of its own (a crash there never takes the server down) and
    # stops with the server.
    command = [sys.executable, "-m", "kizuna", "worker", "--parent-pid", str(os.getpid())]
    worker = subprocess.Popen(command) if with_worker else None  # noqa: S603 - our own interpreter and module
    try:
        uvicorn.run(
            "kizuna.app:create_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level="warning",
            access_log=False,
        )
    finally:
        if worker is not None and worker.poll() is None:
            worker.terminate()
            try:
                worker.wait(timeout=20)
            except subprocess.TimeoutExpired:
                worker.kill()


@app.command()
def demo(
    customers: Annotated[int, typer.Option(help="How many customers to generate.")] = 5000,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same data.")] = 42,
    port: Annotated[int, typer.Option(help="Port to serve on afterwards.")] = 8000,
    host: Annotated[str, typer.Option(help="Address to serve on afterwards.")] = "127.0.0.1",
    serve_after: Annotated[bool, typer.Option("--serve/--no-serve", help="Start the server when done.")] = True,
) -> None:
    """Load realistic demo data (once) and start the server, printing an admin login."""
    from kizuna.auth import service as auth
    from kizuna.db import transaction
    from kizuna.demo import DEMO_ADMIN_EMAIL, DEMO_ADMIN_PASSWORD, load_demo

    engine = _engine()
    try:
        summary = load_demo(engine, customers=customers, seed=seed, console=console)
    except KizunaError as exc:
        raise _fail(exc) from exc
    with transaction(engine) as session:
        auth.ensure_admin(session, email=DEMO_ADMIN_EMAIL, password=DEMO_ADMIN_PASSWORD)
    console.print(summary)
    console.print(
        f"\nSign in at [bold]http://{host}:{port}[/bold] as [bold]{DEMO_ADMIN_EMAIL}[/bold]"
        f" / password [bold]{DEMO_ADMIN_PASSWORD}[/bold] (demo only: change it before real use)"
    )
    if serve_after:
        serve(host=host, port=port, workers=1)


@users_app.command("create")
def users_create(
    email: Annotated[str, typer.Option(help="Sign-in email.")],
    role: Annotated[str, typer.Option(help="admin, manager, marketer, sales, support or viewer.")],
    password: Annotated[str | None, typer.Option(help="At least 10 characters; omit for an API-only user.")] = None,
    name: Annotated[str, typer.Option(help="Display name.")] = "",
) -> None:
    """Create a user."""
    from kizuna.auth import service as auth
    from kizuna.db import transaction

    engine = _engine()
    try:
        with transaction(engine) as session:
            user = auth.create_user(session, actor=CLI, email=email, password=password, role=role, name=name)
            console.print(f"created user {user.email} ({user.role}), id {user.id}")
    except KizunaError as exc:
        raise _fail(exc) from exc


@users_app.command("list")
def users_list() -> None:
    """List users."""
    from kizuna.auth import service as auth
    from kizuna.db import transaction

    with transaction(_engine()) as session:
        for user in auth.list_users(session, actor=CLI):
            console.print(f"{user.id}\t{user.email}\t{user.role}\t{'active' if user.is_active else 'disabled'}")


@users_app.command("unlock")
def users_unlock(email: Annotated[str, typer.Option(help="The user's sign-in email.")]) -> None:
    """Lift a sign-in lock left by too many wrong passwords."""
    from kizuna.auth import signin
    from kizuna.db import transaction

    engine = _engine()
    try:
        with transaction(engine) as session:
            user = signin.unlock_user(session, actor=CLI, email=email)
    except KizunaError as exc:
        raise _fail(exc) from exc
    console.print(f"unlocked {user.email}")


@users_app.command("set-role")
def users_set_role(
    email: Annotated[str, typer.Option(help="The user's sign-in email.")],
    role: Annotated[str, typer.Option(help="admin, manager, marketer, sales, support or viewer.")],
) -> None:
    """Give a user another role (the last active admin cannot be demoted)."""
    from kizuna.auth import accounts
    from kizuna.db import transaction

    try:
        with transaction(_engine()) as session:
            user_id = accounts.user_id_for(session, actor=CLI, email=email)
            user = accounts.change_role(session, actor=CLI, user_id=user_id, role=role)
            console.print(f"{user.email} is now {user.role}")
    except KizunaError as exc:
        raise _fail(exc) from exc


def _set_active(email: str, *, active: bool) -> None:
    from kizuna.auth import accounts
    from kizuna.db import transaction

    try:
        with transaction(_engine()) as session:
            user_id = accounts.user_id_for(session, actor=CLI, email=email)
            user = accounts.set_active(session, actor=CLI, user_id=user_id, active=active)
            console.print(f"{user.email} {'reactivated' if active else 'deactivated'}")
    except KizunaError as exc:
        raise _fail(exc) from exc


@users_app.command("deactivate")
def users_deactivate(email: Annotated[str, typer.Option(help="The user's sign-in email.")]) -> None:
    """Refuse a user's sign-in; their UI sessions end and their API tokens stop working."""
    _set_active(email, active=False)


@users_app.command("reactivate")
def users_reactivate(email: Annotated[str, typer.Option(help="The user's sign-in email.")]) -> None:
    """Let a deactivated user sign in again."""
    _set_active(email, active=True)


@users_app.command("set-password")
def users_set_password(
    email: Annotated[str, typer.Option(help="The user's sign-in email.")],
    password: Annotated[
        str,
        typer.Option(
            prompt=True,
            confirmation_prompt=True,
            hide_input=True,
            help="The new password (asked for when omitted, so it stays out of the shell history).",
        ),
    ],
) -> None:
    """Set (reset) a user's password; lifts their sign-in lock and signs them out of the UI."""
    from kizuna.auth import signin
    from kizuna.db import transaction

    engine = _engine()
    try:
        with transaction(engine) as session:
            user = signin.set_password(session, actor=CLI, email=email, password=password)
    except KizunaError as exc:
        raise _fail(exc) from exc
    console.print(f"password set for {user.email}")


@tokens_app.command("create")
def tokens_create(
    email: Annotated[str, typer.Option(help="The user the token acts as.")],
    name: Annotated[str, typer.Option(help="What the token is for.")],
) -> None:
    """Create an API token and print it (it is shown only this once)."""
    from kizuna.auth import service as auth
    from kizuna.db import transaction

    engine = _engine()
    try:
        with transaction(engine) as session:
            _, secret = auth.create_token(session, actor=CLI, email=email, name=name)
    except KizunaError as exc:
        raise _fail(exc) from exc
    typer.echo(secret)


@app.command()
def worker(
    once: Annotated[bool, typer.Option(help="Deliver what is due, then exit.")] = False,
    batch: Annotated[int, typer.Option(help="Deliveries claimed at a time.")] = 100,
    poll: Annotated[float, typer.Option(help="Seconds to wait when nothing is due.")] = 1.0,
    parent_pid: Annotated[
        int | None, typer.Option(hidden=True, help="Stop when this process ends (set by kizuna serve).")
    ] = None,
) -> None:
    """Deliver outbox messages to their subscribers (journeys, webhooks, sends); stops cleanly on SIGTERM."""
    from kizuna.outbox.worker import run_forever, run_once

    engine = _engine()
    if once:
        tally = run_once(engine, limit=batch)
        console.print(json.dumps({k: v for k, v in tally.__dict__.items()}, ensure_ascii=False))
        return
    console.print("worker running; Ctrl-C to stop")
    run_forever(engine, batch=batch, poll_seconds=poll, parent_pid=parent_pid)
