"""tokenstation's headless side: token protocol, PC/SC, simulator, service and CLI."""

#: The one place the version is written; pyproject.toml reads it from here (no
#: importlib.metadata at start-up, which costs more than the rest of `--help`).
__version__ = "0.1.0"
