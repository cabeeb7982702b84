"""The tenant portal's links: one-time tokens that open a portal session (docs/PORTAL.md)."""
