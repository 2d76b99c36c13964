"""The token protocol library: bytes in, bytes out, no I/O and no project imports.

See ``shared/docs/token-protocol.md`` for the protocol this implements. Everything
here is deterministic given its inputs (the clock is passed in), so it is tested
byte for byte against the worked vectors of that document.
"""
