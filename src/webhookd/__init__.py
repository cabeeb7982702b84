"""webhookd: a multi-tenant webhook delivery platform."""

__version__ = "0.1.0"
