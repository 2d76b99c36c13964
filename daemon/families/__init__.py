"""Token families: one module per family behind one small protocol (``base.Family``),
listed once in ``table.FAMILIES``. Kept empty so that the light modules here
(``capabilities``, ``views``) load without the families themselves."""
