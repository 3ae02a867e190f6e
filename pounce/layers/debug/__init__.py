"""Development error pages (`.debug()`): the layer and the page it renders."""

from pounce.layers.debug.layer import Debug

__all__ = ["Debug"]
