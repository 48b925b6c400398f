"""The native shape: one event or ``{"events": [...]}`` on ``POST /v1/events``."""
