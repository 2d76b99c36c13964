"""tokenstation's headless side: token protocol, PC/SC, simulator, service and CLI."""

#: The version, written here so that start-up needs no importlib.metadata (which costs
#: more than the rest of `--help`); pyproject.toml and debian/changelog say the same
#: (setuptools' dynamic ``attr`` cannot find this namespace package on Debian 12's
#: setuptools 66, which builds the Debian package), and tests/unit/cli/test_cli_startup.py
#: checks all three agree.
__version__ = "0.1.0"
