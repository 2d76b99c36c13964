"""tokenstation's headless side: token protocol, PC/SC, simulator, service and CLI."""

from importlib import metadata

try:
    __version__ = metadata.version("tokenstation")
except metadata.PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"
