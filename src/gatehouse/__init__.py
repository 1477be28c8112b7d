"""Gatehouse: single sign-on for the IT users of a multi-environment platform."""

__version__ = "0.1.0"

#: Version of the console <-> environment sync protocol.
PROTOCOL_VERSION = 1
