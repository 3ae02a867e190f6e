"""Response compression (brotli, zstd, gzip) negotiated per request and streamed, and
bounded inflation of request bodies; docs/compression.md.

`negotiation` (Accept-Encoding → a coding; pure), `rules` (which responses,
which header edits; pure), `codecs` (encoders and bounded decoders; gzip
here, brotli and zstd each in the one module that imports their package),
`response` (one response's encoding `send`), `request` (one request's
inflating `receive`), `layer` (the `Compression` layer and its options).
"""

from pounce.layers.compression.layer import Compression

__all__ = ["Compression"]
