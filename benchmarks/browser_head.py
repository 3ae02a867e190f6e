"""The request head a browser sends: the ``browser`` scenario and ``inproc.py --head browser``.

wrk's request is lean (``GET /hello HTTP/1.1`` and a Host field); a browser's
carries some fifteen fields and ~700 bytes, and a server's parser pays per field
and per byte. These are the fields headless Chromium 156 (Debian's ``chromium``)
sent for a top-level navigation to ``http://127.0.0.1:PORT/hello``, captured off
the wire by ``capture_browser_head.py`` — in the order and the case it sent them,
Host left out: wrk (or the in-process driver) writes it, first, where Chromium
puts it. A headed Chrome sends the same fields; its User-Agent says ``Chrome``
where this one says ``HeadlessChrome``.

The ``Cookie`` field is ours, not the browser's: a real site has set a few, so
two cookies of ~80 bytes together (an analytics id and a session id) were set
on the capture's origin first, and the field is where Chromium put it, last::

    python benchmarks/capture_browser_head.py \\
        --cookie _ga=GA1.1.1804954832.1733443200 \\
        --cookie sessionid=9f2c4e1a7b3d5f6e8a0c2b4d6f8e1a3c5b7d
"""

from __future__ import annotations

BROWSER_FIELDS: tuple[tuple[str, str], ...] = (
    ("Connection", "keep-alive"),
    ("sec-ch-ua", '"Not:A-Brand";v="8", "Chromium";v="156"'),
    ("sec-ch-ua-mobile", "?0"),
    ("sec-ch-ua-platform", '"Linux"'),
    ("Upgrade-Insecure-Requests", "1"),
    (
        "User-Agent",
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko)"
        " HeadlessChrome/156.0.0.0 Safari/537.36",
    ),
    (
        "Accept",
        "text/html,application/xhtml+xml,application/xml;q=0.9,image/jxl,image/avif,"
        "image/webp,image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7",
    ),
    ("Sec-Fetch-Site", "none"),
    ("Sec-Fetch-Mode", "navigate"),
    ("Sec-Fetch-User", "?1"),
    ("Sec-Fetch-Dest", "document"),
    ("Accept-Encoding", "gzip, deflate, br, zstd"),
    ("Accept-Language", "en-US,en;q=0.9"),
    # Not captured from a bare origin: two cookies (~80 bytes), as a real site has set.
    ("Cookie", "_ga=GA1.1.1804954832.1733443200; sessionid=9f2c4e1a7b3d5f6e8a0c2b4d6f8e1a3c5b7d"),
)

HEADS = ("lean", "browser")


def request_head(head: str, path: str, host: str, *, close: bool = False) -> bytes:
    """A GET of `path`: wrk's lean head (Host only) or the browser's; `close` asks for
    ``Connection: close`` (the browser's keep-alive field says close instead, in place)."""
    fields = [("Host", host)]
    if head == "browser":
        fields += [(n, "close" if close and n == "Connection" else v) for n, v in BROWSER_FIELDS]
    elif head != "lean":
        raise ValueError(f"head {head!r}: want one of {', '.join(HEADS)}")
    elif close:
        fields.append(("Connection", "close"))
    lines = [f"GET {path} HTTP/1.1", *(f"{name}: {value}" for name, value in fields)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
