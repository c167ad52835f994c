"""Log collectors: one small class per input format, turning raw records into turn rows.

A collector has a ``name``, ``sniff(head, path)`` (does the start of this file look like my format?),
``records(path)`` (stream the file as RawRecord: position, raw text, parsed object or the error that stopped
parsing) and ``to_turns(obj)`` (the turns of one parsed record, or RecordError naming the field to blame).
Built-ins and third-party formats register the same way, through the entry-point group
``alignment_monitor.collectors``::

    [project.entry-points."alignment_monitor.collectors"]
    myformat = "mypkg.collector:MyCollector"

A turn dict carries: conversation_id, turn_index (0-based), ts (naive UTC datetime), model, model_version,
deployment, user_id, user_attrs (dict), system_prompt, user_message, assistant_message, feedback,
feedback_score, extra (dict). The ingest pipeline adds ids, hashes, redaction and provenance.
"""
from __future__ import annotations

import datetime as dt
import fnmatch
import hashlib
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Iterator, NamedTuple

import orjson

from monitor.config import Config, IngestConfig
from monitor.errors import FormatError, IngestError

ENTRY_POINT_GROUP = "alignment_monitor.collectors"
SNIFF_BYTES = 256 * 1024
# Keys of user attributes that identify a person: kept as user_id or dropped, never a segment.
ID_KEYS = frozenset({"id", "user_id", "userid", "uid", "email", "name", "hashed_ip", "ip", "ip_address", "phone"})
EPOCH = dt.datetime(1970, 1, 1)
# The UTF-8 byte-order mark that Windows tools (Notepad, PowerShell's Out-File, Excel exports) put at the start of a
# file, and that `cat` carries into the middle of concatenated exports. orjson refuses it; it is not data.
BOM = b"\xef\xbb\xbf"


class RecordError(Exception):
    """A record that cannot become turns: the field to blame (or None) and why."""

    def __init__(self, field: str | None, reason: str):
        super().__init__(f"{field}: {reason}" if field else reason)
        self.field = field
        self.reason = reason


class RawRecord(NamedTuple):
    line: int  # 1-based line (JSONL), first file line (CSV), data row (Parquet), span number (OTLP: all spans)
    raw: str | bytes  # the record's raw text, kept for quarantine
    obj: Any  # the parsed record, or None when `error` is set
    error: RecordError | None = None
    end_offset: int = 0  # bytes of the file consumed so far (drives the progress bar)


class Collector:
    """Base class of a log format: subclasses set `name` and implement `sniff`, `records` and `to_turns`."""

    name = "base"
    description = ""
    # Extensions that make the format a strong candidate (tabular files are recognised by name).
    extensions: tuple[str, ...] = ()

    def __init__(self, config: Config | None = None):
        self.config = config or Config()

    @property
    def ingest(self) -> IngestConfig:
        return self.config.ingest

    def sniff(self, head: bytes, path: Path | None = None) -> bool:
        """True when the first bytes of a file look like this format."""
        raise NotImplementedError

    def records(self, path: Path) -> Iterator[RawRecord]:
        """Stream the file's records; a record that cannot be parsed carries its error instead of an object."""
        raise NotImplementedError

    def parse(self, raw: str | bytes) -> Any:
        """Parse one raw record (as stored in quarantine) back into an object; raises RecordError."""
        return parse_json(raw)

    def to_turns(self, obj: Any) -> list[dict]:
        """The turns of one parsed record; raises RecordError naming the field to blame."""
        raise NotImplementedError


# -- registry ----------------------------------------------------------------------------------------------
_BUILTINS = {
    "canonical": "collectors.canonical:CanonicalCollector",
    "openai": "collectors.openai_log:OpenAICollector",
    "sharegpt": "collectors.sharegpt:ShareGPTCollector",
    "tabular": "collectors.tabular:TabularCollector",
    "otlp": "collectors.otlp:OtlpCollector",
}


def _load(ref: str):
    import importlib

    mod, _, attr = ref.partition(":")
    return getattr(importlib.import_module(mod), attr)


def registry() -> dict[str, type[Collector]]:
    """Every known collector class by name: entry points, else the built-in list (uninstalled checkout)."""
    found: dict[str, type[Collector]] = {}
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            found[ep.name] = ep.load()
        except Exception as e:  # a broken third-party plugin must not break every ingest
            raise IngestError(f"collector plugin {ep.name!r} ({ep.value}) failed to load: {e}",
                              "reinstall or uninstall that plugin") from e
    for name, ref in _BUILTINS.items():
        if name not in found:
            found[name] = _load(ref)
    return found


def get_collector(name: str, config: Config | None = None) -> Collector:
    """An instance of the collector called `name`; FormatError lists the known names otherwise."""
    reg = registry()
    if name not in reg:
        raise FormatError(f"unknown format {name!r}", f"one of: {', '.join(reg)}")
    return reg[name](config)


def detect(path: Path, config: Config | None = None) -> Collector | None:
    """The collector for a file (config `ingest.formats` globs first, then sniffing); None for an empty file."""
    config = config or Config()
    for pattern, name in config.ingest.formats.items():
        if fnmatch.fnmatch(str(path), pattern) or fnmatch.fnmatch(path.name, pattern):
            return get_collector(name, config)
    with open(path, "rb") as f:
        head = strip_bom(f.read(SNIFF_BYTES))
    if not head.strip():
        return None
    for magic, (kind, hint) in _NOT_TEXT.items():
        # First: a zip archive that stores its members uncompressed holds JSON lines a sniffer would take.
        if head.startswith(magic):
            raise FormatError(f"{path}: {kind}, not a log as such", hint.format(path=path))
    collectors = [cls(config) for cls in registry().values()]
    for c in collectors:
        if c.sniff(head, path):
            return c
    looked = ", ".join(c.name for c in collectors)
    raise FormatError(f"{path}: not in any known log format (looked for: {looked})",
                      "pass --format NAME if you know it; docs/formats.md shows what each format looks like")


# Files that hold a log in another envelope, by their first bytes (Parquet's PAR1 is read by `tabular`).
_NOT_TEXT = {
    b"\x1f\x8b": ("gzip-compressed", "decompress it first (gunzip -k {path}), then ingest the result"),
    b"\x28\xb5\x2f\xfd": ("zstd-compressed", "decompress it first (zstd -d {path}), then ingest the result"),
    b"BZh": ("bzip2-compressed", "decompress it first (bunzip2 -k {path}), then ingest the result"),
    b"\xfd7zXZ\x00": ("xz-compressed", "decompress it first (unxz -k {path}), then ingest the result"),
    b"PK\x03\x04": ("a zip archive", "extract it first (unzip {path}), then ingest the files"),
    b"\xff\xfe": ("UTF-16 text", "convert it to UTF-8 first (iconv -f UTF-16 -t UTF-8 {path})"),
    b"\xfe\xff": ("UTF-16 text", "convert it to UTF-8 first (iconv -f UTF-16 -t UTF-8 {path})"),
}


def first_json_objects(head: bytes, limit: int = 20) -> list[dict]:
    """Parse up to `limit` leading JSONL lines of `head` (skipping bad ones) for sniffing."""
    out = []
    lines = head.split(b"\n")
    if len(head) >= SNIFF_BYTES:
        lines = lines[:-1]  # the last line may be cut off
    for line in lines:
        if not line.strip():
            continue
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if isinstance(obj, dict):
            out.append(obj)
        if len(out) >= limit:
            break
    return out


# -- reading helpers -----------------------------------------------------------------------------------------
def strip_bom(data: bytes) -> bytes:
    """`data` without a leading UTF-8 byte-order mark."""
    return data[3:] if data[:3] == BOM else data


def parse_json(raw: str | bytes) -> Any:
    """orjson.loads with the reason worded for a quarantine row (invalid UTF-8 told apart from bad JSON)."""
    if isinstance(raw, bytes):
        raw = strip_bom(raw)
    elif raw[:1] == "\ufeff":
        raw = raw[1:]
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        if isinstance(raw, bytes):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as u:
                raise RecordError(None, f"invalid UTF-8 at byte {u.start}") from None
        raise RecordError(None, f"malformed JSON: {e}") from None


def skip_rest_of_line(f) -> int:
    """Read past the end of the current line in 1 MB chunks (never holding it whole); returns the bytes skipped."""
    skipped = 0
    while True:
        chunk = f.readline(1 << 20)
        skipped += len(chunk)
        if not chunk or chunk.endswith(b"\n"):
            return skipped


def iter_lines(path: Path, max_line_bytes: int) -> Iterator[tuple[int, bytes, RecordError | None, int]]:
    """Yield (line number, bytes, error, offset) for each non-blank line, never holding more than one line."""
    with open(path, "rb") as f:
        lineno = 0
        offset = 0
        while True:
            line = f.readline(max_line_bytes + 1)
            if not line:
                return
            lineno += 1
            offset += len(line)
            if len(line) > max_line_bytes and not line.endswith(b"\n"):
                # Too long: keep a prefix for the quarantine row and skip the rest of the line in chunks.
                rest = skip_rest_of_line(f)
                total = len(line) + rest
                offset += rest
                yield lineno, line[:4096], too_long(total, max_line_bytes), offset
                continue
            if line.isspace():
                continue
            yield lineno, line, None, offset


def too_long(total: int, max_line_bytes: int) -> RecordError:
    """The error of a line over ingest.max_line_bytes (its raw text is kept truncated to 4 KB)."""
    return RecordError(None, f"line of {total:,} bytes is over ingest.max_line_bytes ({max_line_bytes:,}); "
                             f"raw text truncated to 4 KB")


def jsonl_records(path: Path, config: IngestConfig) -> Iterator[RawRecord]:
    """RawRecords of a JSON-lines file, parsed with orjson."""
    for lineno, line, err, offset in iter_lines(path, config.max_line_bytes):
        yield jsonl_record(lineno, line, err, offset)


def jsonl_record(lineno: int, line: bytes, err: RecordError | None = None, offset: int = 0) -> RawRecord:
    """The RawRecord of one JSONL line as yielded by `iter_lines` (parsed, or carrying the error)."""
    if err is not None:
        return RawRecord(lineno, line, None, err, offset)
    try:
        return RawRecord(lineno, line, orjson.loads(line), None, offset)
    except orjson.JSONDecodeError:
        try:
            return RawRecord(lineno, line, parse_json(line), None, offset)
        except RecordError as e:
            return RawRecord(lineno, line, None, e, offset)


def json_type(value: Any) -> str:
    """A value's kind in JSON terms for error messages: "null", "a list", "a number" (not Python's NoneType)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def raw_text(raw: str | bytes) -> str:
    """Raw record text for storage: invalid UTF-8 kept visible as backslash escapes."""
    if isinstance(raw, bytes):
        return raw.decode("utf-8", errors="backslashreplace").rstrip("\r\n")
    return raw


# -- field helpers shared by the formats --------------------------------------------------------------------
def parse_ts(value: Any, field: str = "timestamp") -> dt.datetime:
    """A naive UTC datetime from ISO 8601 text (offset or Z; naive = UTC) or epoch seconds/milliseconds."""
    if value is None or value == "":
        raise RecordError(field, "missing timestamp")
    if isinstance(value, bool):
        raise RecordError(field, f"timestamp must be ISO 8601 text or epoch seconds, got {value!r}")
    if isinstance(value, (int, float)):
        v = float(value)
        if v > 1e17:
            v /= 1e9  # nanoseconds
        elif v > 1e14:
            v /= 1e6  # microseconds
        elif v > 1e11:
            v /= 1e3  # milliseconds
        try:
            return EPOCH + dt.timedelta(seconds=v)
        except OverflowError:
            raise RecordError(field, f"timestamp {value!r} is out of range") from None
    if not isinstance(value, str):
        raise RecordError(field, f"timestamp must be ISO 8601 text or epoch seconds, got {json_type(value)}")
    try:
        ts = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        raise RecordError(field, f"unparseable timestamp {value[:60]!r}") from None
    if ts.tzinfo is not None:
        ts = ts.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return ts


def text_content(content: Any, field: str) -> str:
    """Message content as text: a string, or the text parts of an OpenAI-style content list."""
    if isinstance(content, str):
        return content
    if content is None:
        return ""
    if isinstance(content, list):
        parts = []
        for i, p in enumerate(content):
            if isinstance(p, str):
                parts.append(p)
            elif isinstance(p, dict):
                t = p.get("text", p.get("content"))
                if isinstance(t, str):
                    parts.append(t)
                elif p.get("type") not in (None, "text"):
                    continue  # images, audio, tool calls: not text we can score
                else:
                    raise RecordError(f"{field}[{i}]", "content part has no text")
            else:
                raise RecordError(f"{field}[{i}]", f"content part must be text or an object, got {json_type(p)}")
        return "\n".join(parts)
    raise RecordError(field, f"content must be text, got {json_type(content)}")


ROLE_ALIASES = {
    "user": "user", "human": "user", "prompter": "user",
    "assistant": "assistant", "gpt": "assistant", "model": "assistant", "bot": "assistant", "chatgpt": "assistant",
    "bard": "assistant", "claude": "assistant",
    "system": "system", "developer": "system",
    "tool": "tool", "function": "tool", "ipython": "tool", "observation": "tool",
}


def pair_turns(messages: list[tuple[str, str]], field: str) -> tuple[str | None, list[tuple[str, str]]]:
    """Pair each assistant message with the user message it answers; returns (system prompt, [(user, reply)])."""
    system: list[str] = []
    pairs: list[tuple[str, str]] = []
    last_user: str | None = None
    for role, text in messages:
        if role == "user":
            # Two user messages in a row are both answered by the next reply.
            last_user = text if last_user is None else last_user + "\n" + text
        elif role == "assistant":
            pairs.append((last_user or "", text))
            last_user = None
        elif role == "system":
            system.append(text)
    if not pairs:
        raise RecordError(field, "no assistant message")
    return ("\n".join(system) if system else None), pairs


def model_and_version(model: Any, version: Any = None, field: str = "model",
                      version_field: str = "model_version") -> tuple[str, str | None]:
    """Model identifier ``name@version`` and its version; a missing or non-text model, or a version given twice
    that disagrees, is a RecordError."""
    if model is None or model == "":
        raise RecordError(field, "missing model")
    if not isinstance(model, str):
        raise RecordError(field, f"model must be text, got {json_type(model)}")
    if version is not None and not isinstance(version, (str, int, float)):
        raise RecordError(version_field, f"must be text, got {json_type(version)}")
    # `model` keeps the full identifier (name@version) so that every metric grouped by model is per version;
    # `model_version` holds the version alone for filters.
    name, at, own = model.partition("@")
    if version is None or str(version) == "":
        return model, (own or None) if at else None
    version = str(version)
    if not own:  # "assistant" or "assistant@": the version comes from the separate field
        return f"{name}@{version}", version
    if own == version:  # the same version both ways: taken once
        return model, version
    # "assistant@2026-10" with model_version "2026-10-28": which one is right cannot be known, and appending gave
    # the id "assistant@2026-10@2026-10-28", a model of its own in every metric.
    raise RecordError(version_field, f"{version!r} disagrees with the version {own!r} in {field} {model!r}; give the "
                                     f"version once (name@version or {version_field}) or the same in both")


def feedback_of(value: Any) -> tuple[str | None, float | None]:
    """Normalise user feedback: 'up'/'down' (or thumbs, like/dislike, booleans, signed numbers) plus a score."""
    if value is None:
        return None, None
    if isinstance(value, dict):
        label, score = feedback_of(value.get("rating", value.get("label", value.get("thumbs"))))
        s = value.get("score")
        if isinstance(s, (int, float)) and not isinstance(s, bool):
            score = float(s)
        return label, score
    if isinstance(value, bool):
        return ("up" if value else "down"), (1.0 if value else -1.0)
    if isinstance(value, (int, float)):
        v = float(value)
        return ("up" if v > 0 else "down" if v < 0 else None), v
    if isinstance(value, str):
        v = value.strip().lower()
        if v in ("up", "thumbs_up", "thumbsup", "like", "positive", "good", "+1", "👍"):
            return "up", 1.0
        if v in ("down", "thumbs_down", "thumbsdown", "dislike", "negative", "bad", "-1", "👎"):
            return "down", -1.0
        return None, None
    raise RecordError("feedback", f"feedback must be text, a number or an object, got {json_type(value)}")


def unrecognised_feedback(value: Any, label: str | None, score: float | None) -> bool:
    """Feedback given but not understood ("meh", {"stars": 4}): the turn keeps it as written in `extra.feedback`
    rather than losing it (feedback is no reason to quarantine a conversation)."""
    return value is not None and label is None and score is None


def user_attributes(user: Any, field: str = "user") -> tuple[str | None, dict[str, str]]:
    """(user id, segment attributes) from a user object: scalar values as text, identifying keys left out."""
    if user is None:
        return None, {}
    if not isinstance(user, dict):
        raise RecordError(field, f"must be an object, got {json_type(user)}")
    uid = user.get("id", user.get("user_id"))
    attrs = {}
    for k, v in user.items():
        if v is None or k.lower() in ID_KEYS or k.lower().endswith("_id"):
            continue
        if isinstance(v, bool):
            attrs[k] = "true" if v else "false"
        elif isinstance(v, (str, int, float)):
            attrs[k] = str(v)
    return (None if uid is None else str(uid)), attrs


def derived_conversation_id(*parts: Any) -> str:
    """A stable conversation id for records that carry none: a hash of their first messages."""
    return "h:" + hashlib.sha256(orjson.dumps(parts, option=orjson.OPT_NON_STR_KEYS)).hexdigest()[:24]


@dataclass
class Turn:
    """Helper to build the turn dict every collector returns."""

    @staticmethod
    def make(**kw) -> dict:
        base = dict(conversation_id=None, turn_index=0, ts=None, model=None, model_version=None, deployment=None,
                    user_id=None, user_attrs={}, system_prompt=None, user_message="", assistant_message="",
                    feedback=None, feedback_score=None, extra=None)
        base.update(kw)
        return base
