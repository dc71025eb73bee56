"""Agents, teams, roles, assignment, availability, canned replies, notes."""
