"""One-to-many: topics, subscriptions and (later) campaigns."""
