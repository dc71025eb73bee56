"""What workers run across features: event consumers, processing, sending, polling."""
