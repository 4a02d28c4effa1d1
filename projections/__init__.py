"""The read model: pure folds from events to metric deltas, the projector, read tables, summary phrasing."""
