"""Media: files customers send and agents upload, checked, stored under the data dir and served."""
