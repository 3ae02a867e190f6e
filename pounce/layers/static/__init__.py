"""Static files: `.static(prefix, directory)` and ``--static PREFIX=DIR`` (docs/static.md).

The package keeps each job apart: `paths` (request path → segments, the
containment rules, pure), `files` (segments → an open regular file: symlinks,
index files, precompressed siblings), `semantics` (validators, conditional
requests, ranges, content type, Accept-Encoding; pure), `send` (the
response, streamed in chunks) and `layer` (the `AppLayer`).
"""

from pounce.layers.static.layer import Static, not_found
from pounce.layers.static.options import StaticMounts, StaticOptions

__all__ = ["Static", "StaticMounts", "StaticOptions", "not_found"]
