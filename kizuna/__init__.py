"""Kizuna (絆): a self-hostable CRM."""

__version__ = "0.1.0"
