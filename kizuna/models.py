"""Imports every domain's models so that the metadata (and Alembic) sees all tables."""

from kizuna.analytics.models import CustomerMetrics, MetricRun, ProductNeighbor, ProductPopularity
from kizuna.auth.models import ApiToken, AuditEntry, UiSession, User
from kizuna.campaigns.models import Campaign
from kizuna.catalog.models import Product
from kizuna.chat.models import Chat, ChatMessage, ChatOrigin
from kizuna.customers.models import (
    Company,
    Consent,
    Customer,
    CustomerIdentity,
    CustomerImportMark,
    CustomerMerge,
    DuplicatePair,
    DuplicateScan,
    Note,
    SavedView,
    Tag,
)
from kizuna.db import Base, never_reuse_ids
from kizuna.events.models import Event
from kizuna.fields.models import CustomField
from kizuna.imports.models import ImportJob
from kizuna.ingest.models import Source
from kizuna.inquiries.models import Inquiry, InquiryCategory, InquiryEvent, InquiryMacro, InquiryMessage
from kizuna.journeys.models import Journey, JourneyEnrollment, JourneyStep, JourneyVersion
from kizuna.knowledge.models import Article
from kizuna.messaging.line_models import LineLink, LineSettings, LineWebhookEvent
from kizuna.messaging.models import Message, MessageEvent, Suppression, Template
from kizuna.messaging.settings import ChannelSettings
from kizuna.messaging.webhook_models import WebhookAllow, WebhookEndpoint
from kizuna.orders.models import Order, OrderLine
from kizuna.outbox.models import OutboxDelivery, OutboxMessage
from kizuna.privacy.models import ThirdPartyProvision
from kizuna.sales.models import Activity, Deal, DealStageChange, Pipeline, Stage, Task, Team
from kizuna.sales.scoring.models import Score, ScoringModel, ScoringRule
from kizuna.segments.models import Segment, SegmentMembership
from kizuna.surveys.models import Survey, SurveyResponse
from kizuna.webhooks.models import WebhookDelivery, WebhookSubscription

never_reuse_ids(Base.metadata)

__all__ = [
    "Activity",
    "ApiToken",
    "Article",
    "AuditEntry",
    "Base",
    "Campaign",
    "ChannelSettings",
    "Chat",
    "ChatMessage",
    "ChatOrigin",
    "Company",
    "Consent",
    "CustomField",
    "Customer",
    "CustomerIdentity",
    "CustomerImportMark",
    "CustomerMerge",
    "CustomerMetrics",
    "Deal",
    "DealStageChange",
    "DuplicatePair",
    "DuplicateScan",
    "Event",
    "ImportJob",
    "Inquiry",
    "InquiryCategory",
    "InquiryEvent",
    "InquiryMacro",
    "InquiryMessage",
    "Journey",
    "JourneyEnrollment",
    "JourneyStep",
    "JourneyVersion",
    "LineLink",
    "LineSettings",
    "LineWebhookEvent",
    "Message",
    "MessageEvent",
    "MetricRun",
    "Note",
    "Order",
    "OrderLine",
    "OutboxDelivery",
    "OutboxMessage",
    "Pipeline",
    "Product",
    "ProductNeighbor",
    "ProductPopularity",
    "SavedView",
    "Score",
    "ScoringModel",
    "ScoringRule",
    "Segment",
    "SegmentMembership",
    "Source",
    "Stage",
    "Suppression",
    "Survey",
    "SurveyResponse",
    "Tag",
    "Task",
    "Team",
    "Template",
    "ThirdPartyProvision",
    "UiSession",
    "User",
    "WebhookAllow",
    "WebhookDelivery",
    "WebhookEndpoint",
    "WebhookSubscription",
]
