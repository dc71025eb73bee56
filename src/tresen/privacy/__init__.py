"""Consent records, double opt-in, export, erasure, retention, audit log."""
