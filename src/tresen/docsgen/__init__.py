"""Documentation generated from the code (`tresen docs generate`), and the check that it is current."""
