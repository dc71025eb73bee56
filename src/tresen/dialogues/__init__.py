"""Dialogue tests: scripted customer conversations run through the live pipeline."""
