"""An app module that fails while being imported."""

raise RuntimeError("boom at import time")
