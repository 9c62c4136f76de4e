"""The configuration language: text -> directive tree -> frozen model. No I/O but reading files."""
