"""Sans-IO HTTP: bytes in, events out (and the reverse). No sockets here."""
