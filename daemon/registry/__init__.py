"""What the station knows of each token: the SQLite registry, drift rate, plots."""
