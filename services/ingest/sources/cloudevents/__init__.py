"""CloudEvents 1.0 in structured JSON mode, posted to ``/v1/events`` or on a raw topic."""
