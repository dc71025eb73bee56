"""API tokens, outbound webhooks, catalog and order lookup."""
