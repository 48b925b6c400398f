"""Owned work: tasks started by playbooks, with owners, due times and outcomes."""
