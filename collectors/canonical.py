"""The canonical JSONL format: one conversation (or one exchange of it) per line.

Example line::

    {"conversation_id": "c-81", "turn": 2, "timestamp": "2026-11-03T14:02:11Z", "model": "assistant@2026-10",
     "messages": [{"role": "user", "content": "How do I reset my router?"},
                  {"role": "assistant", "content": "Hold the reset button for 10 seconds..."}],
     "user": {"id": "u-19", "language": "en", "region": "EU", "age_band": "25-34"},
     "feedback": "up", "metadata": {"deployment": "web", "app_version": "3.2"}}

``turn`` (optional, 1-based) numbers the first assistant message of the record within its conversation, for logs
written one exchange per line; without it the record is taken to hold the conversation from its start, so a
conversation logged again with one more exchange yields only the new turn (the others are duplicates).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

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
    text_content,
    unrecognised_feedback,
    user_attributes,
)

_KNOWN = frozenset({"conversation_id", "turn", "timestamp", "model", "model_version", "messages", "user",
                    "feedback", "metadata", "deployment"})


class CanonicalCollector(Collector):
    name = "canonical"
    description = 'JSONL with "messages" and "conversation_id"/"timestamp"/"model"'
    extensions = (".jsonl", ".ndjson", ".json")

    def sniff(self, head: bytes, path: Path | None = None) -> bool:
        for obj in first_json_objects(head):
            if isinstance(obj.get("messages"), list) and "request" not in obj and (
                "conversation_id" in obj or "timestamp" in obj or "model" in obj
            ):
                return True
        return False

    def records(self, path: Path) -> Iterator[RawRecord]:
        return jsonl_records(path, self.ingest)

    def to_turns(self, obj: Any) -> list[dict]:
        if not isinstance(obj, dict):
            raise RecordError(None, f"record must be a JSON object, got {json_type(obj)}")
        messages = obj.get("messages")
        if messages is None:
            raise RecordError("messages", "missing messages")
        if not isinstance(messages, list):
            raise RecordError("messages", f"must be a list, got {json_type(messages)}")
        if not messages:
            raise RecordError("messages", "empty messages")
        meta = obj.get("metadata")
        if meta is not None and not isinstance(meta, dict):
            raise RecordError("metadata", f"must be an object, got {json_type(meta)}")
        meta = meta or {}
        ts = parse_ts(obj.get("timestamp"))
        vfield = "model_version" if "model_version" in obj else "metadata.model_version"
        model, version = model_and_version(obj.get("model"), obj.get("model_version", meta.get("model_version")),
                                           version_field=vfield)
        user_id, attrs = user_attributes(obj.get("user"))
        feedback, score = feedback_of(obj.get("feedback"))
        deployment = obj.get("deployment", meta.get("deployment"))
        first = obj.get("turn")
        if first is None:
            first = 1
        elif isinstance(first, bool) or not isinstance(first, int):
            raise RecordError("turn", f"must be an integer, got {json_type(first)}")
        elif first < 1:
            raise RecordError("turn", f"must be 1 or more (1 = first assistant reply), got {first}")

        system: list[str] = []
        turns: list[dict] = []
        last_user: str | None = None
        first_user = None
        for i, m in enumerate(messages):
            if not isinstance(m, dict):
                raise RecordError(f"messages[{i}]", f"must be an object, got {json_type(m)}")
            raw_role = m.get("role")
            role = ROLE_ALIASES.get(raw_role) if isinstance(raw_role, str) else None
            if role is None:
                raise RecordError(f"messages[{i}].role", f"unknown role {raw_role!r}")
            text = text_content(m.get("content"), f"messages[{i}].content")
            if role == "user":
                last_user = text if last_user is None else last_user + "\n" + text
                if first_user is None:
                    first_user = text
            elif role == "assistant":
                if m.get("content") is None:  # a tool call: no reply text to monitor
                    raise RecordError(f"messages[{i}].content", "assistant message has no text (content is null, "
                                                                "e.g. a tool call); log the reply text")
                mts = parse_ts(m["timestamp"], f"messages[{i}].timestamp") if m.get("timestamp") else ts
                turns.append(Turn.make(turn_index=first - 1 + len(turns), ts=mts, user_message=last_user or "",
                                       assistant_message=text))
                last_user = None
            elif role == "system":
                system.append(text)
        if not turns:
            raise RecordError("messages", "no assistant message")
        conv = obj.get("conversation_id")
        if conv is None or conv == "":
            conv = derived_conversation_id(str(ts), first_user, turns[0]["assistant_message"])
        elif not isinstance(conv, (str, int)) or isinstance(conv, bool):
            raise RecordError("conversation_id", f"must be text, got {json_type(conv)}")
        extra = {k: v for k, v in obj.items() if k not in _KNOWN}
        if unrecognised_feedback(obj.get("feedback"), feedback, score):
            extra["feedback"] = obj["feedback"]
        rest = {k: v for k, v in meta.items() if k not in ("deployment", "model_version")}
        if rest:
            extra["metadata"] = rest
        shared = dict(conversation_id=str(conv), model=model, model_version=version,
                      deployment=None if deployment is None else str(deployment), user_id=user_id,
                      user_attrs=attrs, system_prompt="\n".join(system) if system else None,
                      extra=extra or None)
        for n, t in enumerate(turns):
            t.update(shared)
            # Feedback rates the reply it was given on: the last one of the record.
            if n == len(turns) - 1:
                t["feedback"], t["feedback_score"] = feedback, score
        return turns
