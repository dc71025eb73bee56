"""Channel adapters behind one protocol."""
