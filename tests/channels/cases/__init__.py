"""One module per further channel kind, each defining `CASE: ChannelCase` for the conformance table."""
