"""Segment's Tracking API: calls mapped, and calls that wait for their user's group call."""
