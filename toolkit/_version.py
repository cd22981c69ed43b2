"""The package version, in one place (the client's User-Agent reads it too)."""

__version__ = "0.1.0"
