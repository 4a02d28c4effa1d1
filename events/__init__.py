"""The write model: event envelope, per-type payload models, metric declarations and the event store."""
