"""The outside world's side of the options: flags, variables, config files, docs.

Every function here works from option definitions (`pounce.options`), never
from a list of its own: the CLI parser (`add_arguments`, `from_args`), the
``POUNCE_*`` variables (`from_environ`), TOML config files (`from_file`),
``pounce --print-config`` (`render_settings`) and the option tables of
docs/cli.md, docs/builder.md and docs/workers.md (`doc_tables`; ``python -m
pounce.settings --write`` rewrites them, and tests/test_options.py fails when
they are stale). A value from any of them goes through the option's own
check, and an error names the flag, the variable, or the file and the key.
"""

from __future__ import annotations

import argparse
import difflib
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pounce.errors import BuildError
from pounce.options import ENV_PREFIX, Option, did_you_mean

# -- settings: files, the environment, the command line ------------------------------------


@dataclass(frozen=True, slots=True)
class Setting:
    """One option's value and where it came from."""

    value: object
    source: str


def _named(options: Sequence[Option]) -> dict[str, Option]:
    return {opt.name: opt for opt in options if opt.meta.outside}


def _setting(opt: Option, raw: object, source: str) -> Setting:
    try:
        return Setting(opt.coerce(raw), source)
    except ValueError as exc:
        raise BuildError(f"{opt.name}={raw!r} ({source}): {exc}") from None
    except BuildError as exc:
        raise BuildError(f"{opt.name}={raw!r} ({source}): {exc}") from None


def defaults(options: Sequence[Option]) -> dict[str, Setting]:
    return {
        name: Setting(None if opt.required else opt.default, "default")
        for name, opt in _named(options).items()
    }


def read_toml(path: Path) -> dict[str, object]:
    """The Pounce table of `path`: ``[tool.pounce]`` of a pyproject.toml, else the top level."""
    try:
        with path.open("rb") as f:
            data: dict[str, Any] = tomllib.load(f)
    except OSError as exc:
        raise BuildError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise BuildError(f"config file {path}: {exc}") from None
    if path.name == "pyproject.toml":
        table = data.get("tool", {}).get("pounce", {})
        return table if isinstance(table, dict) else {}
    return data


def from_file(options: Sequence[Option], path: Path) -> dict[str, Setting]:
    """Settings from a TOML file; keys are option names (dashes allowed)."""
    named = _named(options)
    found: dict[str, Setting] = {}
    for key, raw in read_toml(path).items():
        name = key.replace("-", "_")
        opt = named.get(name)
        if opt is None:
            raise BuildError(
                f"config file {path}: unknown key {key!r}", hint=did_you_mean(name, named)
            )
        found[name] = _setting(opt, raw, f"file {path}")
    return found


NOT_OPTIONS = frozenset({"POUNCE_ARTIFACTS"})
"""``POUNCE_*`` variables that are not options and draw no warning (the test suite's
artifact folder)."""


def from_environ(
    options: Sequence[Option], environ: Mapping[str, str]
) -> tuple[dict[str, Setting], list[str]]:
    """Settings from ``POUNCE_*`` (and fallback) variables, and warnings for near misses."""
    found: dict[str, Setting] = {}
    variables: dict[str, Option] = {}
    for name, opt in _named(options).items():
        variables.update(dict.fromkeys(opt.env, opt))
        var = next((v for v in opt.env if v in environ), None)
        if var is not None:
            found[name] = _setting(opt, _text(opt, var, environ[var]), f"environment {var}")
    warnings = []
    for var in environ:
        if var.startswith(ENV_PREFIX) and var not in variables and var not in NOT_OPTIONS:
            # Compared without the prefix every name shares, which would make any two alike.
            names = {v[len(ENV_PREFIX) :]: v for v in variables if v.startswith(ENV_PREFIX)}
            close = difflib.get_close_matches(var[len(ENV_PREFIX) :], list(names), n=1, cutoff=0.6)
            nearest = f"did you mean {names[close[0]]}?" if close else "docs/cli.md lists them"
            warnings.append(f"{var} is not a Pounce variable ({nearest})")
    return found, warnings


def _text(opt: Option, var: str, text: str) -> object:
    try:
        return opt.parse_text(text)
    except (ValueError, argparse.ArgumentTypeError):
        raise BuildError(f"{var}={text!r}: must be {opt.expected}") from None


def from_args(options: Sequence[Option], args: argparse.Namespace) -> dict[str, Setting]:
    """Settings given on the command line (flags default to absent)."""
    found = {}
    for name, opt in _named(options).items():
        if hasattr(args, name):
            found[name] = _setting(opt, getattr(args, name), f"command line {opt.flag}")
    return found


def render_settings(options: Sequence[Option], settings: Mapping[str, Setting]) -> str:
    """``--print-config``: TOML that reproduces `settings`, each line saying where it came from."""
    lines = ["# pounce --print-config: the merged options and where each came from"]
    group = None
    for name, opt in _named(options).items():
        if opt.group != group:
            group = opt.group
            lines.append(f"\n# -- {group}")
        setting = settings[name]
        if setting.value is None:
            lines.append(f"# {name} is not set  # {setting.source}")
            continue
        value = '"***"' if opt.meta.secret else opt.show(setting.value)
        lines.append(f"{name} = {value}  # {setting.source}")
    return "\n".join(lines)


# -- the CLI parser ---------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser, options: Sequence[Option]) -> None:
    """One flag per option, grouped; absent flags leave no attribute (`from_args`)."""
    groups: dict[str, argparse._ArgumentGroup] = {}
    for opt in options:
        if opt.flag is None:
            continue
        group = groups.get(opt.group)
        if group is None:
            group = groups[opt.group] = parser.add_argument_group(opt.group)
        shown = opt.shown_default.replace("`", "")
        text = f"{opt.meta.help} (default: {shown}{_unit(opt)})".replace("%", "%%")
        if opt.positional:
            group.add_argument(
                opt.name, metavar=opt.flag, nargs="?", default=argparse.SUPPRESS, help=text
            )
            continue
        kwargs: dict[str, Any] = {"dest": opt.name, "default": argparse.SUPPRESS, "help": text}
        if opt.base == "bool" and opt.meta.parse is None:
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["type"] = _argtype(opt)
            if opt.meta.repeat:
                kwargs["action"] = "append"
            if opt.choices and opt.meta.convert is None:
                kwargs["choices"] = opt.choices
            kwargs["metavar"] = _metavar(opt)
        group.add_argument(opt.flag, **kwargs)


def _unit(opt: Option) -> str:
    shown = opt.meta.unit and not opt.meta.shown and opt.shown_default != "—"
    return f" {opt.meta.unit}" if shown else ""


def _metavar(opt: Option) -> str | None:
    if opt.choices and opt.meta.convert is None:
        return None
    by_unit = {"s": "SECONDS", "bytes": "BYTES", "B/s": "BYTES_PER_S"}
    if opt.meta.unit in by_unit:
        return by_unit[opt.meta.unit]
    return "N" if opt.base == "int" else opt.name.rsplit("_", 1)[-1].upper()


def _argtype(opt: Option) -> Callable[[str], object]:
    parse = opt.meta.parse if opt.meta.repeat else opt.parse_text
    assert parse is not None
    word = opt.base if opt.base in ("int", "float", "bool") else "value"

    def parsed(text: str) -> object:
        try:
            return parse(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid {word} value: {text!r}") from None

    return parsed


# -- docs tables ---------------------------------------------------------------------------------


def cli_table(options: Sequence[Option]) -> str:
    """docs/cli.md: one table per group, every flag, variable and config key."""
    out: list[str] = []
    group = None
    for opt in options:
        if opt.flag is None:
            continue
        if opt.group != group:
            group = opt.group
            out += ["", f"### {group}", ""]
            out += ["| config key | flag | environment | default | unit | meaning |"]
            out += ["|---|---|---|---|---|---|"]
        flag = opt.flag
        if opt.base == "bool" and opt.meta.parse is None:
            flag = f"{flag}/--no-{flag[2:]}"
        env = ", ".join(f"`{v}`" for v in opt.env)
        out.append(
            f"| `{opt.name}` | `{flag}` | {env} | {opt.shown_default} | "
            f"{opt.meta.unit} | {opt.meta.help} |"
        )
    return "\n".join(out[1:])


def builder_table(options: Sequence[Option]) -> str:
    """docs/builder.md: every option of every builder call."""
    out = ["| call | default | unit | meaning |", "|---|---|---|---|"]
    seen: set[tuple[type, str]] = set()
    for opt in options:
        if opt.call and (opt.owner, opt.field) not in seen:
            seen.add((opt.owner, opt.field))
            default = "required" if opt.required else opt.shown_default
            out.append(f"| `{opt.call}` | {default} | {opt.meta.unit} | {opt.meta.help} |")
    return "\n".join(out)


_BLOCK = re.compile(r"(<!-- options:(\w+) -->)(.*?)(<!-- /options:\2 -->)", re.S)


def docs_with_tables(text: str, tables: Mapping[str, str]) -> str:
    """`text` with each ``<!-- options:NAME -->`` block replaced by ``tables[NAME]``
    (an empty block too: that is how a new table is first filled in)."""
    return _BLOCK.sub(lambda m: f"{m[1]}\n{tables[m[2]]}\n{m[4]}", text)


DOCS = {
    "cli": "cli.md",
    "builder": "builder.md",
    "workers": "workers.md",
    "backpressure": "backpressure.md",
    "compression": "compression.md",
    "static": "static.md",
    "uvicorn": "migrating-from-uvicorn.md",
}
"""Each generated table and the page in docs/ that holds it."""


def doc_tables() -> dict[str, str]:
    """Every generated table by name (the NAME of ``<!-- options:NAME -->``)."""
    from pounce import uvicorn_flags
    from pounce.presets import FRONT_END

    return {
        "cli": cli_table(FRONT_END),
        "builder": builder_table(FRONT_END),
        "workers": cli_table([opt for opt in FRONT_END if opt.group == "workers"]),
        "backpressure": cli_table([opt for opt in FRONT_END if opt.group in ("health", "limits")]),
        "compression": cli_table([opt for opt in FRONT_END if opt.group == "compression"]),
        "static": cli_table([opt for opt in FRONT_END if opt.group == "static"]),
        "uvicorn": uvicorn_flags.table(),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m pounce.settings [--write]``: print (or rewrite in docs/) the option tables."""
    parser = argparse.ArgumentParser(prog="python -m pounce.settings")
    parser.add_argument("--write", action="store_true", help="update the tables in docs/")
    parser.add_argument("--docs", default="docs", help="the docs folder")
    args = parser.parse_args(argv)
    tables = doc_tables()
    if not args.write:
        print("\n\n".join(tables.values()))
        return 0
    for name in DOCS.values():
        path = Path(args.docs) / name
        path.write_text(docs_with_tables(path.read_text(encoding="utf-8"), tables), "utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
