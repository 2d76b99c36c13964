"""tokenstation's desktop side: tray icon and notifications, talking to the daemon over D-Bus."""
