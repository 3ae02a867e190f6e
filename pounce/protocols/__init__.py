"""Sans-I/O protocol cores: bytes in, events out; no asyncio, socket, ssl or time."""
