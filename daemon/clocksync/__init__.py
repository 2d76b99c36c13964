"""Token clocks: host clock trust, sync policy, the sync feature."""
