"""Playbooks as versioned data: what work an alert or an account change starts."""
