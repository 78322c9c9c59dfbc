"""Outgoing webhooks on domain events: subscriptions of endpoints to public event types, and their deliveries."""
