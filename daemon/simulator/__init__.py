"""A faithful virtual token (token-protocol.md section 8) and its link to vsmartcard's vpcd."""
