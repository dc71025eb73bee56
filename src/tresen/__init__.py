"""tresen: self-hosted, privacy-first customer messaging."""

__version__ = "0.1.0"
