"""Builds the FastAPI application: JSON API under /api/v1, the server-rendered UI, static files."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from sqlalchemy.engine import Engine

import kizuna
from kizuna.config import get_settings
from kizuna.db import get_engine
from kizuna.web import errors, openapi

API_PREFIX = "/api/v1"


def create_app(engine: Engine | None = None) -> FastAPI:
    from kizuna.analytics.api import router as analytics_router
    from kizuna.audiences.api import router as audiences_router
    from kizuna.auth.api import router as auth_router
    from kizuna.campaigns.api import router as campaigns_router
    from kizuna.catalog.api import router as catalog_router
    from kizuna.chat.api import public as chat_public_router
    from kizuna.chat.api import router as chats_router
    from kizuna.chat.api import widget as chat_widget_router
    from kizuna.chat.cors import ChatCORS
    from kizuna.chat.limits import ChatLimits
    from kizuna.customers import card_scan
    from kizuna.customers.api import companies as companies_router
    from kizuna.customers.api import router as customers_router
    from kizuna.customers.cards_api import router as cards_router
    from kizuna.customers.saved_views_api import router as saved_views_router
    from kizuna.events.api import router as events_router
    from kizuna.exports.api import router as exports_router
    from kizuna.fields import registry as field_registry
    from kizuna.fields.api import router as fields_router
    from kizuna.imports.api import router as imports_router
    from kizuna.ingest.api import router as tracking_router
    from kizuna.ingest.api import snippet as snippet_router
    from kizuna.inquiries.api import router as inquiries_router
    from kizuna.journeys.api import router as journeys_router
    from kizuna.knowledge.api import router as knowledge_router
    from kizuna.messaging.api import router as messaging_router
    from kizuna.messaging.api_line import router as line_router
    from kizuna.messaging.api_line import webhooks as webhooks_router
    from kizuna.orders.api import router as orders_router
    from kizuna.outbox import registry
    from kizuna.outbox.api import router as outbox_router
    from kizuna.privacy.api import router as privacy_router
    from kizuna.privacy.api import subjects as subject_export_router
    from kizuna.sales.api import activities_router, deals_router, pipelines_router, tasks_router, teams_router
    from kizuna.sales.calendar_api import calendar_router
    from kizuna.sales.calendar_api import feed_router as calendar_feed_router
    from kizuna.sales.scoring.api import router as scoring_router
    from kizuna.segments.api import router as segments_router
    from kizuna.surveys.api import router as surveys_router
    from kizuna.web.ui import router as ui_router
    from kizuna.webhooks.api import router as webhook_events_router

    app = FastAPI(
        title="Kizuna CRM",
        version=kizuna.__version__,
        description="Customer 360, segments, journeys and KPIs. Authenticate with `Authorization: Bearer <token>`.",
        openapi_url="/openapi.json",
        docs_url="/api/docs",
        redoc_url=None,
    )
    app.state.engine = engine or get_engine()
    # Custom field definitions are read from this database wherever a filter or rule names attributes.<key>.
    field_registry.bind(app.state.engine)
    # Subscribers are declared in code and loaded at start, so every message this server emits fans out to
    # all of them, and a broken plugin module stops the server here rather than at the first emit.
    registry.load()
    errors.install(app)
    settings = get_settings()
    # An import file (plus its multipart envelope) may be far bigger than any JSON body.
    upload_limit = settings.import_upload_max_bytes + 64 * 1024
    uploads = {"/imports": upload_limit, f"{API_PREFIX}/imports": upload_limit}
    # A business-card photo from a phone camera may be several megabytes.
    card_limit = card_scan.MAX_BYTES + 64 * 1024
    uploads |= {"/customers/scan": card_limit, f"{API_PREFIX}/cards/scan": card_limit}
    # A raw mail posted by the mail server (attachments included) may be bigger than a JSON body.
    uploads |= {f"{API_PREFIX}/inquiries/email": settings.inquiry_mail_max_bytes + 64 * 1024}
    app.add_middleware(errors.BodyLimit, max_bytes=settings.max_body_bytes, uploads=uploads)
    app.add_middleware(errors.NoSniff)
    # The website chat's public API answers only the sites an admin allowed (kizuna/chat/cors.py).
    app.add_middleware(ChatCORS)
    app.state.chat_limits = ChatLimits(app.state.engine)
    for router in (
        customers_router,
        companies_router,
        catalog_router,
        orders_router,
        events_router,
        auth_router,
        exports_router,
        imports_router,
        outbox_router,
        saved_views_router,
        analytics_router,
        segments_router,
        campaigns_router,
        line_router,
        webhooks_router,
        webhook_events_router,
        journeys_router,
        messaging_router,
        audiences_router,
        privacy_router,
        pipelines_router,
        deals_router,
        activities_router,
        tasks_router,
        teams_router,
        calendar_router,
        cards_router,
        fields_router,
        scoring_router,
        inquiries_router,
        surveys_router,
        knowledge_router,
        chats_router,
        subject_export_router,
    ):
        app.include_router(router, prefix=API_PREFIX)
    # The Segment-compatible tracking API lives at /v1, where Segment's SDKs send once given Kizuna's host.
    app.include_router(tracking_router)
    app.include_router(snippet_router)
    app.include_router(calendar_feed_router)
    # The website chat: its public API (/chat/v1) and the widget script sites embed.
    app.include_router(chat_public_router)
    app.include_router(chat_widget_router)
    app.include_router(ui_router)
    openapi.install(app)
    app.mount("/static", StaticFiles(directory=Path(__file__).parent / "web" / "static"), name="static")

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app
