"""The HTTP layer only: routes, templates, static files."""
