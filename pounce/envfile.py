"""``--env-file``: variables from a dotenv file, read with the standard library.

The format is the one python-dotenv, docker ``--env-file`` and systemd
``EnvironmentFile=`` share for plain values, and nothing more is needed for
setting a server's options and an app's settings: ``KEY=VALUE`` lines,
optional ``export``, ``#`` comments on their own line or after an unquoted
value, single quotes taken literally, double quotes with ``\\n``, ``\\t``,
``\\"`` and ``\\\\``. No variable expansion and no multi-line values: a file
that needs them is better as a config file (``--config``). A line that is
none of these is an error naming the file and the line, before anything is
served. As with Uvicorn (python-dotenv's default), a variable already set in
the environment wins over the file.
"""

from __future__ import annotations

import re
from collections.abc import MutableMapping
from pathlib import Path

from pounce.errors import BuildError

_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$")
_ESCAPES = {"n": "\n", "t": "\t", '"': '"', "\\": "\\"}


def read(path: Path) -> dict[str, str]:
    """The variables of the file at `path`, in order."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise BuildError(f"--env-file {path}: cannot read it: {exc.strerror or exc}") from None
    found: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = _LINE.match(line)
        value = _value(match[2]) if match else None
        if match is None or value is None:
            raise BuildError(
                f"--env-file {path}, line {number}: not KEY=VALUE: {line.strip()!r}",
                hint="a line is NAME=value, optionally quoted; # starts a comment",
            )
        found[match[1]] = value
    return found


def _value(raw: str) -> str | None:
    if raw[:1] == "'":
        end = raw.find("'", 1)
        rest = raw[end + 1 :].strip() if end > 0 else "unclosed"
        return raw[1:end] if not rest or rest.startswith("#") else None
    if raw[:1] == '"':
        out, i = [], 1
        while i < len(raw) and raw[i] != '"':
            if raw[i] == "\\" and i + 1 < len(raw):
                out.append(_ESCAPES.get(raw[i + 1], "\\" + raw[i + 1]))
                i += 2
            else:
                out.append(raw[i])
                i += 1
        rest = raw[i + 1 :].strip()
        return "".join(out) if i < len(raw) and (not rest or rest.startswith("#")) else None
    return re.split(r"\s+#", raw, maxsplit=1)[0].rstrip()


def load(path: Path, environ: MutableMapping[str, str]) -> list[str]:
    """Set each variable of the file that `environ` lacks; the names set, in order."""
    added = []
    for name, value in read(path).items():
        if name not in environ:
            environ[name] = value
            added.append(name)
    return added
