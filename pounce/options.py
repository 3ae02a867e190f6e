"""Options, defined once.

Every option is a field of the frozen options dataclass of the layer or
protocol that uses it, declared with `option()`: the default and the type are
the field's, and the declaration adds the unit, one line of help, a check, and
the names the outside world uses — `name` (the ``pounce.run()`` keyword and
the config-file key; the field's own name unless given), the CLI flag
(``--`` + `name` with dashes) and the environment variable (``POUNCE_`` + the
flag, upper case). Everything else is derived from these definitions:

* builder calls check their keywords with `keywords()` (type, range, unknown
  names with the nearest valid one) — a `BuildError` naming the call;
* the standard preset (`pounce.presets.StandardOptions`) is keyed by `name`;
* the CLI parser, the environment, config files, ``pounce --print-config``
  and the option tables of docs/cli.md and docs/builder.md (`pounce.settings`;
  a test fails when the docs and the definitions disagree).

Options are read when a server is built, never per request.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal, TypeVar, get_args, get_origin, get_type_hints

from pounce.errors import BuildError

T = TypeVar("T")

REQUIRED: Any = dataclasses.MISSING
"""The default of an option that has none (`.tls(cert=...)`)."""

ENV_PREFIX = "POUNCE_"
_META = "pounce.option"
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


# -- checks ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Check:
    """A bound on a value of the option's type; `text` completes "must be …"."""

    text: str
    ok: Callable[[Any], bool]
    choices: tuple[str, ...] = ()


def whole(low: int, high: int | None = None, *, text: str = "") -> Check:
    """An integer `low`…`high` (`high` None: no upper bound)."""
    if not text:
        text = f"an integer {low}-{high}" if high is not None else f"an integer of at least {low}"
    return Check(text, lambda v: low <= v and (high is None or v <= high))


def seconds(text: str = "a finite positive number of seconds") -> Check:
    """A finite duration above zero (NaN and infinity refused)."""
    return Check(text, lambda v: 0 < v < math.inf)


def one_of(choices: Iterable[str]) -> Check:
    names = tuple(choices)
    return Check("one of " + ", ".join(names), lambda v: v in names, names)


# -- declaring options ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Meta:
    """What `option()` adds to a field; see `option`."""

    unit: str
    help: str
    name: str
    outside: bool
    flag: str
    env: tuple[str, ...]
    check: Check | None
    convert: Callable[[object], object] | None
    parse: Callable[[str], object] | None
    shown: str
    call: str
    group: str
    secret: bool
    repeat: bool
    show: Callable[[object], str] | None


def option(
    default: T,
    *,
    help: str,
    unit: str = "",
    name: str = "",
    outside: bool = True,
    flag: str = "",
    env: tuple[str, ...] = (),
    check: Check | None = None,
    convert: Callable[[object], object] | None = None,
    parse: Callable[[str], object] | None = None,
    shown: str = "",
    call: str = "",
    group: str = "",
    secret: bool = False,
    repeat: bool = False,
    show: Callable[[object], str] | None = None,
) -> T:
    """A dataclass field that is an option.

    `name`: the outside name (``run()`` keyword, config key), default the
    field's; `outside=False` keeps it builder-only. `flag` / `env`: override
    the derived CLI flag (``"APP"``: a positional) and variables (the first
    set one wins). `check`: a bound (`whole`, `seconds`, `one_of`);
    `convert`: replaces the type check for values no annotation describes
    (raise ValueError("must be …")); `parse`: text (flag, variable) → value
    when the type's own parsing is not enough. `shown`: the default as the
    docs state it. `call`: the builder call that sets it when that is not
    ``<owner.builder_call>(<field>=)``. `repeat`: a list flag given once per
    item. `secret`: masked by ``--print-config``.
    """
    meta = Meta(
        unit=unit,
        help=help,
        name=name,
        outside=outside,
        flag=flag,
        env=env,
        check=check,
        convert=convert,
        parse=parse,
        shown=shown,
        call=call,
        group=group,
        secret=secret,
        repeat=repeat,
        show=show,
    )
    return dataclasses.field(default=default, metadata={_META: meta})


# -- one option ------------------------------------------------------------------------------------

Base = Literal["bool", "int", "float", "str", "choice", "list", "other"]


@dataclass(frozen=True, slots=True)
class Option:
    """One option as declared on its owner's field, with its type resolved."""

    owner: type
    field: str
    default: object
    meta: Meta
    base: Base
    optional: bool
    choices: tuple[str, ...]

    @property
    def name(self) -> str:
        return self.meta.name or self.field

    @property
    def flag(self) -> str | None:
        """``--flag``, a positional's metavar, or None for a builder-only option."""
        if not self.meta.outside:
            return None
        return self.meta.flag or "--" + self.name.replace("_", "-")

    @property
    def positional(self) -> bool:
        return self.flag is not None and not self.flag.startswith("-")

    @property
    def env(self) -> tuple[str, ...]:
        if not self.meta.outside:
            return ()
        if self.meta.env:
            return self.meta.env
        stem = self.name if self.positional else (self.flag or "").lstrip("-")
        return (ENV_PREFIX + stem.upper().replace("-", "_"),)

    @property
    def group(self) -> str:
        return self.meta.group or str(getattr(self.owner, "options_group", ""))

    @property
    def call(self) -> str:
        """The builder call that sets this option, or "" (a preset or CLI choice)."""
        if self.meta.call:
            return self.meta.call
        call = getattr(self.owner, "builder_call", "")
        return f"{call}({self.field}=)" if call else ""

    @property
    def required(self) -> bool:
        return self.default is dataclasses.MISSING

    @property
    def expected(self) -> str:
        """What a value must be, completing "must be …"."""
        if self.meta.check is not None:
            return self.meta.check.text
        if self.base == "choice":
            return "one of " + ", ".join(self.choices)
        words = {
            "bool": "true or false",
            "int": "an integer",
            "float": "a number",
            "str": "a string",
            "list": "a list of strings",
            "other": "valid",
        }
        return words[self.base] + (" or none" if self.optional else "")

    def parse_text(self, text: str) -> object:
        """A flag's or variable's text → a value (not yet checked); ValueError if it is none."""
        if self.meta.parse is not None:
            if self.meta.repeat:
                return [self.meta.parse(item) for item in text.split(",") if item.strip()]
            return self.meta.parse(text)
        word = text.strip()
        if self.optional and word.lower() in ("none", ""):
            return None
        if self.base == "bool":
            if word.lower() in _TRUE + _FALSE:
                return word.lower() in _TRUE
            raise ValueError("expected true or false")
        if self.base == "int":
            return int(word)
        if self.base == "float":
            return float(word)
        if self.base == "list":
            return _split(word)
        return text

    def coerce(self, value: object) -> object:
        """A value from any source → the option's value; ValueError("must be …") if not."""
        if self.meta.convert is not None:
            return self.meta.convert(value)
        if isinstance(value, str) and self._parses(value):
            value = self._parsed(value)
        if value is None:
            if self.optional or self.required:  # unset: a required option's layer is off
                return None
            raise ValueError(f"must be {self.expected}")
        value = self._typed(value)
        check = self.meta.check
        if check is not None and not check.ok(value):
            raise ValueError(f"must be {check.text}")
        return value

    def _parses(self, text: str) -> bool:
        """Is a string given where the type is not one read as the flag would (``"none"``)?"""
        if self.base in ("str", "choice", "other"):
            return False
        return self.meta.parse is not None or (self.optional and text.lower() in ("none", "off"))

    def _parsed(self, text: str) -> object:
        try:
            return self.parse_text(text)
        except ValueError:
            raise ValueError(f"must be {self.expected}") from None

    def _typed(self, value: object) -> object:
        base = self.base
        wrong = ValueError(f"must be {self.expected}")
        if base == "bool":
            if not isinstance(value, bool):
                raise wrong
        elif base in ("int", "float"):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise wrong
            if base == "int" and not isinstance(value, int):
                raise wrong
            return float(value) if base == "float" else value
        elif base in ("str", "choice"):
            if not isinstance(value, str) or (base == "choice" and value not in self.choices):
                raise wrong
        elif base == "list":
            if isinstance(value, bytes | Mapping) or not isinstance(value, Iterable):
                raise wrong
            items = _split(value if isinstance(value, str) else tuple(value))
            if not all(isinstance(item, str) for item in items):
                raise wrong
            return items
        return value

    def show(self, value: object) -> str:
        """`value` as TOML (``--print-config``, the docs)."""
        if self.meta.show is not None and value is not None:
            return self.meta.show(value)
        return _toml(value)

    @property
    def shown_default(self) -> str:
        """The default as the docs and ``--help`` state it (Markdown)."""
        if self.meta.shown:
            return self.meta.shown
        if self.required or self.default is None:
            return "—"
        return f"`{self.show(self.default)}`"


def _split(value: str | list[Any] | tuple[Any, ...]) -> tuple[Any, ...]:
    """``"a, b"`` or a list → a tuple of non-empty entries (strings stripped)."""
    items = value.split(",") if isinstance(value, str) else value
    stripped = (item.strip() if isinstance(item, str) else item for item in items)
    return tuple(item for item in stripped if item != "")


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_toml(item) for item in value) + "]"
    return json.dumps(str(value))


def _resolve(hint: object) -> tuple[Base, bool, tuple[str, ...]]:
    """(base, optional, choices) of a field annotation."""
    optional = False
    if get_origin(hint) in (typing.Union, types.UnionType):
        members = get_args(hint)
        rest = [m for m in members if m is not type(None)]
        optional = len(rest) < len(members)
        hint = rest[0] if len(rest) == 1 else object
    if get_origin(hint) is Literal:
        return "choice", optional, tuple(str(c) for c in get_args(hint))
    simple: dict[object, Base] = {bool: "bool", int: "int", float: "float", str: "str"}
    if hint in simple:
        return simple[hint], optional, ()
    if get_origin(hint) is tuple and get_args(hint) == (str, Ellipsis):
        return "list", optional, ()
    return "other", optional, ()


@cache
def options_of(owner: type) -> tuple[Option, ...]:
    """The options declared on the dataclass `owner`, in field order."""
    hints = get_type_hints(owner)
    found: list[Option] = []
    for f in dataclasses.fields(owner):
        meta = f.metadata.get(_META)
        if isinstance(meta, Meta):
            base, optional, choices = _resolve(hints[f.name])
            if meta.check is not None and meta.check.choices:
                choices = meta.check.choices
            found.append(Option(owner, f.name, f.default, meta, base, optional, choices))
    return tuple(found)


def option_of(owner: type, field: str) -> Option:
    """The option on `owner`'s field `field`."""
    for candidate in options_of(owner):
        if candidate.field == field:
            return candidate
    raise KeyError(field)


def nearest(word: str, names: Iterable[str]) -> str | None:
    """The valid name closest to a misspelt `word`, if any is close."""
    close = difflib.get_close_matches(word, list(names), n=1, cutoff=0.5)
    return close[0] if close else None


def did_you_mean(word: str, names: Iterable[str]) -> str:
    names = sorted(names)
    near = nearest(word, names)
    return f"did you mean {near}?" if near else f"valid: {', '.join(names)}"


# -- the builder's side ---------------------------------------------------------------------------


def check_value(label: str, opt: Option, value: object) -> object:
    """`value` for `opt`, or a `BuildError` "`label` must be …" (label: ``.h2(max_resets=0):``)."""
    try:
        return opt.coerce(value)
    except ValueError as exc:
        raise BuildError(f"{label} {exc}") from None


def keywords(owner: type, call: str, given: Mapping[str, object]) -> dict[str, Any]:
    """Check a builder call's keyword options against `owner`'s definitions."""
    known = {opt.field: opt for opt in options_of(owner)}
    checked: dict[str, Any] = {}
    for key, value in given.items():
        opt = known.get(key)
        if opt is None:
            raise BuildError(f"{call}({key}=...): unknown option", hint=did_you_mean(key, known))
        checked[key] = check_value(f"{call}({key}={value!r}):", opt, value)
    for opt in known.values():
        if opt.required and opt.field not in checked:
            raise BuildError(f"{call}(): {opt.field}= is required", hint=f"{opt.flag} on the CLI")
    return checked


def outside_values(owner: type, values: Mapping[str, object]) -> dict[str, Any]:
    """Builder keywords of `owner` from `values` keyed by outside names (for a preset)."""
    return {o.field: values[o.name] for o in options_of(owner) if o.meta.outside}


def check_fields(instance: object, call: str) -> None:
    """Check every option field of the frozen dataclass `instance` (a layer that is its
    own options), storing each coerced value; a `BuildError` names `call` and the field."""
    owner: type = type(instance)
    for opt in options_of(owner):
        value = getattr(instance, opt.field)
        if opt.required and value is None:
            raise BuildError(f"{call}(): {opt.field}= is required", hint=f"{opt.flag} on the CLI")
        checked = check_value(f"{call}({opt.field}={value!r}):", opt, value)
        object.__setattr__(instance, opt.field, checked)
