"""Sentry reporting (`.sentry()`): the layer; ``client`` alone imports sentry_sdk."""

from pounce.layers.sentry.layer import Sentry

__all__ = ["Sentry"]
