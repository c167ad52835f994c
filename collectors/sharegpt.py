"""ShareGPT, LMSYS-Chat and WildChat style records: a conversation list per JSONL line (or a JSON array file).

Examples::

    {"id": "sg-1", "conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello!"}]}
    {"conversation_id": "ly-9", "model": "vicuna-13b", "language": "German", "tstamp": 1690000000,
     "conversation": [{"role": "user", "content": "..."}, {"role": "assistant", "content": "..."}]}
    {"conversation_hash": "1f9c...", "model": "gpt-4-0314", "timestamp": "2023-04-09 00:02:53+00:00",
     "country": "Brazil", "state": "Sao Paulo", "language": "Portuguese", "conversation": [...]}

Timestamp and model are optional here (public dumps often lack them): a missing timestamp is the ingest time and
a missing model is ``unknown``. ``language``, ``country`` and ``state`` become segment attributes.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import orjson

from monitor.errors import IngestError
from collectors import (
    ROLE_ALIASES,
    Collector,
    RawRecord,
    RecordError,
    Turn,
    derived_conversation_id,
    feedback_of,
    first_json_objects,
    json_type,
    jsonl_records,
    model_and_version,
    parse_ts,
    strip_bom,
    text_content,
    user_attributes,
)

_ID_KEYS = ("conversation_id", "id", "conversation_hash", "question_id")
_TS_KEYS = ("timestamp", "tstamp", "created_at", "time")
_ATTR_KEYS = ("language", "country", "state", "region")
_USED = frozenset(_ID_KEYS + _TS_KEYS + _ATTR_KEYS + ("conversations", "conversation", "model", "user", "turn",
                                                      "feedback", "hashed_ip", "model_version", "deployment"))
# A JSON array file is loaded whole (arrays cannot be streamed without a streaming parser); use JSONL when large.
MAX_ARRAY_FILE = 512 * 1024 * 1024


class ShareGPTCollector(Collector):
    name = "sharegpt"
    description = 'JSONL or JSON array with "conversations"/"conversation" lists (ShareGPT, LMSYS, WildChat)'
    extensions = (".jsonl", ".json")

    def sniff(self, head: bytes, path: Path | None = None) -> bool:
        if head.lstrip()[:1] == b"[" and (b'"conversations"' in head or b'"conversation"' in head):
            return True
        return any(isinstance(o.get("conversations", o.get("conversation")), list) for o in first_json_objects(head))

    def records(self, path: Path) -> Iterator[RawRecord]:
        with open(path, "rb") as f:
            start = strip_bom(f.read(64)).lstrip()
        if start[:1] != b"[":
            yield from jsonl_records(path, self.ingest)
            return
        size = path.stat().st_size
        if size > MAX_ARRAY_FILE:
            raise IngestError(f"{path}: JSON array file of {size:,} bytes is too large to load whole",
                              "convert it to JSONL (one conversation per line)")
        blob = path.read_bytes()
        try:
            data = orjson.loads(strip_bom(blob))
        except orjson.JSONDecodeError as e:
            # The whole array is one record when it does not parse: quarantine it (prefix) with the reason.
            yield RawRecord(1, blob[:4096], None, RecordError(None, f"malformed JSON array: {e}"), size)
            return
        if not isinstance(data, list):
            yield RawRecord(1, blob[:4096], None, RecordError(None, "expected a JSON array of conversations"), size)
            return
        for i, obj in enumerate(data, 1):
            yield RawRecord(i, orjson.dumps(obj), obj, None, size * i // max(len(data), 1))

    def to_turns(self, obj: Any) -> list[dict]:
        if not isinstance(obj, dict):
            raise RecordError(None, f"record must be a JSON object, got {json_type(obj)}")
        key = "conversations" if "conversations" in obj else "conversation"
        conv = obj.get(key)
        if conv is None:
            raise RecordError(key, "missing conversation list")
        if not isinstance(conv, list):
            raise RecordError(key, f"must be a list, got {json_type(conv)}")
        if not conv:
            raise RecordError(key, "empty messages")
        ts_raw = next((obj[k] for k in _TS_KEYS if obj.get(k) not in (None, "")), None)
        ts = parse_ts(ts_raw, next(k for k in _TS_KEYS if obj.get(k) not in (None, ""))) if ts_raw is not None else None
        model, version = model_and_version(obj.get("model") or "unknown", obj.get("model_version"))
        system: list[str] = []
        turns: list[dict] = []
        last_user: str | None = None
        first_user = None
        for i, m in enumerate(conv):
            if not isinstance(m, dict):
                raise RecordError(f"{key}[{i}]", f"must be an object, got {json_type(m)}")
            rkey = "from" if "from" in m else "role"
            raw_role = m.get(rkey)
            role = ROLE_ALIASES.get(raw_role.lower()) if isinstance(raw_role, str) else None
            if role is None:
                raise RecordError(f"{key}[{i}].{rkey}", f"unknown role {raw_role!r}")
            ckey = "value" if "value" in m else "content"
            text = text_content(m.get(ckey), f"{key}[{i}].{ckey}")
            if role == "user":
                last_user = text if last_user is None else last_user + "\n" + text
                first_user = first_user if first_user is not None else text
            elif role == "assistant":
                mts = m.get("timestamp")
                turns.append(Turn.make(turn_index=len(turns), user_message=last_user or "", assistant_message=text,
                                       ts=parse_ts(mts, f"{key}[{i}].timestamp") if mts else ts))
                last_user = None
            elif role == "system":
                system.append(text)
        if not turns:
            raise RecordError(key, "no assistant message")
        cid = next((obj[k] for k in _ID_KEYS if obj.get(k) not in (None, "")), None)
        if cid is None:
            cid = derived_conversation_id(first_user, turns[0]["assistant_message"])
        user_id, attrs = user_attributes(obj.get("user"))
        for k in _ATTR_KEYS:
            v = obj.get(k)
            if isinstance(v, (str, int, float)) and not isinstance(v, bool) and k not in attrs:
                attrs[k] = str(v)
        feedback, score = feedback_of(obj.get("feedback"))
        extra = {k: v for k, v in obj.items() if k not in _USED}
        deployment = obj.get("deployment")
        for n, t in enumerate(turns):
            t.update(conversation_id=str(cid), model=model, model_version=version, user_id=user_id,
                     user_attrs=attrs, system_prompt="\n".join(system) if system else None, extra=extra or None,
                     deployment=None if deployment is None else str(deployment))
            if t["ts"] is None:
                t["_ts_optional"] = True
            if n == len(turns) - 1:
                t["feedback"], t["feedback_score"] = feedback, score
        return turns
