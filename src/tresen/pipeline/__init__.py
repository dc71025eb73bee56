"""The spine: inbound and outbound message flow."""
