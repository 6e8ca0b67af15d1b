"""Delivery: the engine that claims, sends, paces and settles outbox rows (``flush``,
``batch``, the relay), workspaces, and the metrics of a run."""
