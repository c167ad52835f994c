"""OpenAI chat-completions request/response pairs, one pair per JSONL line (as API gateways and proxies log them).

Example line::

    {"request": {"model": "gpt-4o", "user": "u-77", "messages": [{"role": "system", "content": "Be brief."},
                 {"role": "user", "content": "What is the capital of Peru?"}]},
     "response": {"id": "chatcmpl-9x", "created": 1762180931, "model": "gpt-4o-2024-08-06",
                  "choices": [{"index": 0, "message": {"role": "assistant", "content": "Lima."},
                               "finish_reason": "stop"}]},
     "metadata": {"conversation_id": "c-12", "deployment": "eu-support", "user.language": "es"}}

The turn index is the number of assistant messages already in the request history; the reply is choice 0 (other
choices are kept in ``extra``). ``user.*`` keys of ``metadata`` (or a ``user`` object) become segment attributes.
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


def split_user_keys(meta: dict) -> tuple[dict, dict]:
    """Split ``{"user.language": "es", "app": "x"}`` into user attributes and the rest."""
    user, rest = {}, {}
    for k, v in meta.items():
        if isinstance(k, str) and k.startswith("user."):
            user[k[5:]] = v
        else:
            rest[k] = v
    return user, rest


class OpenAICollector(Collector):
    name = "openai"
    description = 'JSONL of {"request": {"messages"}, "response": {"choices"}} pairs'
    extensions = (".jsonl", ".ndjson")

    def sniff(self, head: bytes, path: Path | None = None) -> bool:
        return any(isinstance(o.get("request"), dict) and isinstance(o.get("response"), dict)
                   for o in first_json_objects(head))

    def records(self, path: Path) -> Iterator[RawRecord]:
        return jsonl_records(path, self.ingest)

    def to_turns(self, obj: Any) -> list[dict]:
        if not isinstance(obj, dict):
            raise RecordError(None, f"record must be a JSON object, got {json_type(obj)}")
        req, resp = obj.get("request"), obj.get("response")
        if not isinstance(req, dict):
            raise RecordError("request", "missing request object")
        if not isinstance(resp, dict):
            raise RecordError("response", "missing response object")
        messages = req.get("messages")
        if not isinstance(messages, list):
            raise RecordError("request.messages", "missing or not a list")
        if not messages:
            raise RecordError("request.messages", "empty messages")
        choices = resp.get("choices")
        if not isinstance(choices, list) or not choices:
            err = resp.get("error")
            why = f" (the response is an error: {str(err)[:120]})" if err else ""
            raise RecordError("response.choices", f"no assistant message{why}")
        first = choices[0]
        msg = first.get("message") if isinstance(first, dict) else None
        if not isinstance(msg, dict):
            raise RecordError("response.choices[0].message", "missing message")
        if msg.get("content") is None:
            calls = " (the reply is a tool call)" if msg.get("tool_calls") or msg.get("function_call") else ""
            raise RecordError("response.choices[0].message.content",
                              f"no reply text: content is null{calls}; only text replies become turns")
        reply = text_content(msg.get("content"), "response.choices[0].message.content")

        system, users, history_replies = [], [], 0
        for i, m in enumerate(messages):
            if not isinstance(m, dict):
                raise RecordError(f"request.messages[{i}]", f"must be an object, got {json_type(m)}")
            role = ROLE_ALIASES.get(m.get("role")) if isinstance(m.get("role"), str) else None
            if role is None:
                raise RecordError(f"request.messages[{i}].role", f"unknown role {m.get('role')!r}")
            text = text_content(m.get("content"), f"request.messages[{i}].content")
            if role == "system":
                system.append(text)
            elif role == "user":
                users = users + [text] if users and i > 0 and messages[i - 1].get("role") == "user" else [text]
            elif role == "assistant":
                history_replies += 1
        ts_value = resp.get("created", obj.get("timestamp", req.get("timestamp")))
        ts = parse_ts(ts_value, "response.created")
        meta = obj.get("metadata", req.get("metadata")) or {}
        if not isinstance(meta, dict):
            raise RecordError("metadata", f"must be an object, got {json_type(meta)}")
        user_meta, rest = split_user_keys(meta)
        if isinstance(obj.get("user"), dict):
            user_meta = {**user_meta, **obj["user"]}
        user_id, attrs = user_attributes(user_meta)
        if user_id is None and isinstance(req.get("user"), str):
            user_id = req["user"]
        model, version = model_and_version(resp.get("model") or req.get("model"),
                                           meta.get("model_version"), "response.model", "metadata.model_version")
        feedback, score = feedback_of(obj.get("feedback", meta.get("feedback")))
        conv = rest.pop("conversation_id", None) or obj.get("conversation_id")
        if not conv:
            # Without a conversation id, the first user message identifies the conversation across its calls.
            first_user = next((m.get("content") for m in messages if m.get("role") == "user"), None)
            conv = derived_conversation_id(str(first_user), req.get("user"))
        deployment = rest.pop("deployment", None) or obj.get("deployment")
        rest.pop("model_version", None)
        rest.pop("feedback", None)
        extra = {k: v for k, v in obj.items() if k not in ("request", "response", "metadata", "user", "feedback",
                                                          "conversation_id", "deployment", "timestamp")}
        extra.update({f"metadata.{k}": v for k, v in rest.items()})
        raw_feedback = obj.get("feedback", meta.get("feedback"))
        if unrecognised_feedback(raw_feedback, feedback, score):
            extra["feedback"] = raw_feedback
        for key in ("id", "usage", "system_fingerprint"):
            if key in resp:
                extra[f"response.{key}"] = resp[key]
        if first.get("finish_reason") is not None:
            extra["finish_reason"] = first["finish_reason"]
        if len(choices) > 1:
            extra["other_choices"] = len(choices) - 1
        return [Turn.make(conversation_id=str(conv), turn_index=history_replies, ts=ts, model=model,
                          model_version=version, deployment=None if deployment is None else str(deployment),
                          user_id=user_id, user_attrs=attrs, system_prompt="\n".join(system) if system else None,
                          user_message="\n".join(users), assistant_message=reply, feedback=feedback,
                          feedback_score=score, extra=extra or None)]
