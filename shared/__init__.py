"""Code every Vitals service uses: event contract, Kafka and database plumbing,
settings, metrics and logging."""
