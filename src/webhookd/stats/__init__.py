"""Figures of the whole deployment for the operator console's overview."""
