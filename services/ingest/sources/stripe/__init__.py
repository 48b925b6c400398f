"""Stripe webhook events as billing events, and each customer's account."""
