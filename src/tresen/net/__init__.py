"""Outbound network access: the one guard every server-side fetch and POST goes through."""
