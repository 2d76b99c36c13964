"""Where the registry, the burn queue and the provisioning log are kept.

Two backends behind one interface (:class:`database.Database`): SQLite files on this
station (the default) and a PostgreSQL database several stations share. The schema of
each part is built by numbered migrations (``schema.py``) written once for both.
"""
