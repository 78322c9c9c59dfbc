"""Inquiry desk: tickets from the web form, the API, e-mail and chat; claims, SLA, replies by e-mail."""
