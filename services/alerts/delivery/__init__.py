"""Delivering notices: channels and their kinds, routing, the payloads each receiver
expects, the senders, the dispatcher of the outbox, and the guards around them (target
checks, certificate files, channel secrets sealed at rest)."""
