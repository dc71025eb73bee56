"""Database tables, sessions and queries."""
