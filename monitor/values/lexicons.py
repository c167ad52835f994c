"""Readers for the lexicon formats the scorer understands: term lists, word<TAB>weight files, LIWC .dic, MoralStrength."""
from __future__ import annotations

import math
import re
from importlib import resources
from pathlib import Path

from monitor.errors import ConfigError

DATA = resources.files("monitor.values") / "data"

# MoralStrength rates each word 1..9 (1 = strong vice, 5 = neutral, 9 = strong virtue). Words within one point of
# neutral are left out; the rest weigh their distance from neutral scaled to 0..1: 9 -> 1.0, 7 -> 0.5, 6 -> 0.25.
MS_NEUTRAL, MS_MARGIN = 5.0, 1.0


def parse_term_lines(text: str, origin: str) -> list[tuple[str, float]]:
    """Parse a term list: one term a line, optional <TAB>weight, '#' comment lines; errors name origin:line."""
    out = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        term, _, weight_s = raw.partition("\t")
        term = term.strip()
        weight = 1.0
        if weight_s.strip():
            try:
                weight = float(weight_s.strip())
            except ValueError:
                raise ConfigError(f"{origin}:{lineno}: weight {weight_s.strip()!r} of term {term!r} is not a number",
                                  hint="write 'term<TAB>weight', e.g. 'diagnos*\t0.5'") from None
            if not math.isfinite(weight) or weight <= 0:
                raise ConfigError(f"{origin}:{lineno}: weight of term {term!r} must be a positive number, "
                                  f"got {weight_s.strip()}")
        if not term:  # e.g. a header row like "\t0"
            continue
        out.append((term, weight))
    return out


def parse_dic(text: str, origin: str, category: str) -> list[tuple[str, float]]:
    """Return the terms of one category of a LIWC-style .dic file (header `%` block of id/name lines, then terms)."""
    parts = text.split("%")
    if len(parts) < 3:
        raise ConfigError(f"{origin}: not a LIWC .dic file (expected a header between two '%' lines)")
    ids: dict[str, str] = {}
    for line in parts[1].splitlines():
        fields = line.split()
        if len(fields) >= 2:
            ids[fields[0]] = fields[1]
    wanted = {k for k, v in ids.items() if v == category or k == category}
    if not wanted:
        raise ConfigError(f"{origin}: category {category!r} not in the .dic header",
                          hint="one of " + ", ".join(sorted(ids.values())))
    out = []
    body = "%".join(parts[2:])
    for line in body.splitlines():
        fields = re.split(r"\s+", line.strip())
        if len(fields) < 2:
            continue
        # a word's categories follow it: "abuse*\t2 4" (some .dic files also put multi-word terms in parentheses)
        word, cats = fields[0], fields[1:]
        while cats and not cats[0].isdigit() and cats[0] not in ids:
            word, cats = word + " " + cats[0], cats[1:]
        if wanted.intersection(cats):
            out.append((word.strip("()"), 1.0))
    return out


def read_terms_file(path: str | Path, category: str | None, origin: str) -> list[tuple[str, float]]:
    """Read a user's terms file: `.dic` needs a category; anything else is a term list (see parse_term_lines)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{origin}: terms_file {str(p)!r} does not exist",
                          hint=f"paths are relative to the working directory ({Path.cwd()})") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{origin}: cannot read terms_file {str(p)!r}: {e}") from e
    if p.suffix.lower() == ".dic":
        if category is None:
            raise ConfigError(f"{origin}: terms_file {p.name!r} is a .dic file; key 'category' is missing",
                              hint="add e.g. \"category\": \"care.virtue\"")
        return parse_dic(text, f"{origin} {p}", category)
    if category is not None:
        raise ConfigError(f"{origin}: key 'category' only applies to a .dic terms_file, not {p.name!r}")
    return parse_term_lines(text, str(p))


def curated(file: str) -> list[tuple[str, float]]:
    """Terms of a bundled curated list (data/curated/<file>)."""
    res = DATA / "curated" / file
    return parse_term_lines(res.read_text(encoding="utf-8"), f"monitor/values/data/curated/{file}")


def moralstrength(file: str, polarity: str) -> list[tuple[str, float]]:
    """Virtue (score >= 6) or vice (score <= 4) words of a bundled MoralStrength file, weighted 0..1, stoplist removed."""
    stop = {t for t, _ in curated("moral_stoplist.txt")}
    out = []
    text = (DATA / "moralstrength" / file).read_text(encoding="utf-8")
    for line in text.splitlines()[1:]:  # header: WORD<TAB>EXPRESSED_MORAL
        word, _, score_s = line.partition("\t")
        word = word.strip()
        if not word or word in stop:
            continue
        s = float(score_s)
        dist = s - MS_NEUTRAL if polarity == "virtue" else MS_NEUTRAL - s
        if dist >= MS_MARGIN:
            out.append((word.replace("_", " "), dist / 4.0))
    return out
