"""D-Bus: the one library module, names, the service interface and its client."""
