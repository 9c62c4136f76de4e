"""The only code that touches transports: client connections, upstream connections, TLS."""
