"""Validation of value plugins: extra dimensions defined in config (terms, terms_file or regex), checked strictly."""
from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass

from monitor.errors import ConfigError
from monitor.values.dimensions import BUILTIN_NAMES, FAMILIES, Dimension
from monitor.values.lexicons import read_terms_file
from monitor.values.matcher import term_tokens

ALLOWED_KEYS = ("name", "family", "description", "lexicon", "weight", "terms", "terms_file", "category", "regex")
SOURCE_KEYS = ("terms", "terms_file", "regex")
_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


@dataclass(frozen=True)
class Plugin:
    """A validated plugin: its Dimension plus either (term, weight, tokens) triples or a compiled regex."""

    dimension: Dimension
    terms: tuple[tuple[str, float, tuple[str, ...]], ...] = ()
    regex: re.Pattern | None = None
    weight: float = 1.0


def _where(i: int, spec: dict) -> str:
    name = spec.get("name") if isinstance(spec, dict) else None
    return f"value plugin #{i + 1}" + (f" ({name!r})" if isinstance(name, str) else "")


def validate(custom_dimensions) -> list[Plugin]:
    """Check every plugin dict and load its terms; raise ConfigError naming the plugin and the key on any problem."""
    if custom_dimensions is None:
        return []
    if not isinstance(custom_dimensions, (list, tuple)):
        raise ConfigError(f"custom_dimensions must be a list of dicts, got {type(custom_dimensions).__name__}")
    plugins, seen = [], set()
    for i, spec in enumerate(custom_dimensions):
        plugin = _validate_one(i, spec)
        name = plugin.dimension.name
        if name in seen:
            raise ConfigError(f"{_where(i, spec)}: key 'name': {name!r} is defined twice",
                              hint="give each plugin its own name")
        seen.add(name)
        plugins.append(plugin)
    return plugins


def _validate_one(i: int, spec) -> Plugin:
    where = _where(i, spec)
    if not isinstance(spec, dict):
        raise ConfigError(f"{where}: must be a dict, got {type(spec).__name__}")
    for key in spec:
        if key not in ALLOWED_KEYS:
            close = difflib.get_close_matches(str(key), ALLOWED_KEYS, n=1)
            raise ConfigError(f"{where}: unknown key {key!r}",
                              hint=f"did you mean {close[0]!r}?" if close else "allowed keys: " + ", ".join(ALLOWED_KEYS))

    def get_str(key: str, required: bool = False):
        if key not in spec:
            if required:
                raise ConfigError(f"{where}: key {key!r} is missing")
            return None
        v = spec[key]
        if not isinstance(v, str) or not v.strip():
            raise ConfigError(f"{where}: key {key!r} must be a non-empty string, got {v!r}")
        return v

    name = get_str("name", required=True)
    if not _NAME_RE.match(name):
        raise ConfigError(f"{where}: key 'name': {name!r} is not a valid dimension name",
                          hint="lower-case letters, digits and '_', starting with a letter, e.g. 'medical_caution'")
    if name in BUILTIN_NAMES:
        raise ConfigError(f"{where}: key 'name': {name!r} is a built-in dimension", hint="choose another name")
    family = get_str("family", required=True)
    if family not in FAMILIES:
        close = difflib.get_close_matches(family, FAMILIES, n=1)
        raise ConfigError(f"{where}: key 'family': {family!r} is not one of {', '.join(FAMILIES)}",
                          hint=f"did you mean {close[0]!r}?" if close else None)
    description = get_str("description") or f"Custom dimension {name}."

    weight = spec.get("weight", 1.0)
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight) or weight <= 0:
        raise ConfigError(f"{where}: key 'weight' must be a positive number, got {weight!r}")
    weight = float(weight)

    given = [k for k in SOURCE_KEYS if k in spec]
    if len(given) != 1:
        raise ConfigError(f"{where}: needs exactly one of keys 'terms', 'terms_file', 'regex'"
                          + (f", got {', '.join(map(repr, given))}" if given else ""))
    source = given[0]
    if "category" in spec and source != "terms_file":
        raise ConfigError(f"{where}: key 'category' only applies with 'terms_file' (a .dic file)")

    if source == "regex":
        pattern = get_str("regex")
        try:
            rx = re.compile(pattern, re.IGNORECASE)
        except re.error as e:
            raise ConfigError(f"{where}: key 'regex': {pattern!r} does not compile: {e}") from None
        if rx.search("") is not None:
            raise ConfigError(f"{where}: key 'regex': {pattern!r} matches the empty string",
                              hint="make at least one character required")
        lexicon = get_str("lexicon") or "custom-regex"
        return Plugin(Dimension(name, family, lexicon, description), regex=rx, weight=weight)

    if source == "terms":
        raw = spec["terms"]
        if not isinstance(raw, (list, tuple)) or not raw or not all(isinstance(t, str) and t.strip() for t in raw):
            raise ConfigError(f"{where}: key 'terms' must be a non-empty list of non-empty strings, got {raw!r}")
        pairs = [(t, 1.0) for t in raw]
        lexicon = get_str("lexicon") or "custom"
    else:
        path = get_str("terms_file")
        category = spec.get("category")
        if category is not None and (not isinstance(category, str) or not category.strip()):
            raise ConfigError(f"{where}: key 'category' must be a non-empty string, got {category!r}")
        pairs = read_terms_file(path, category, f"{where} key 'terms_file'")
        if not pairs:
            raise ConfigError(f"{where}: key 'terms_file': {path!r} has no terms"
                              + (f" in category {category!r}" if category else ""))
        lexicon = get_str("lexicon") or f"custom:{path.replace(chr(92), '/').rsplit('/', 1)[-1]}"

    terms = []
    for term, w in pairs:
        try:
            toks = term_tokens(term)
        except ValueError as e:
            raise ConfigError(f"{where}: key {source!r}: {e}") from None
        terms.append((term.strip(), w * weight, tuple(toks)))
    return Plugin(Dimension(name, family, lexicon, description), terms=tuple(terms), weight=weight)
