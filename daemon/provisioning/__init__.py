"""Burn jobs: the queue, offers and burns onto tokens."""
