"""trio shells around the core: services, transports, serialization."""
