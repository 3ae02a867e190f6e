"""Test helpers that users need too: run a real server on a free port."""

from pounce.testing.server import TestServer

__all__ = ["TestServer"]
