"""The console: CSMs' pages over the scoring and alerts APIs, signed in by API key."""
