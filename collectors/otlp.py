"""OpenTelemetry GenAI spans exported as OTLP JSON (one ExportTraceServiceRequest per line, or one document).

Each span with ``gen_ai.*`` attributes is one turn. The conversation is ``gen_ai.conversation.id`` (else
``session.id``, else the trace id); the model ``gen_ai.response.model`` (else ``gen_ai.request.model``); the
time the span's start. Prompt and reply are read from whichever convention the instrumentation used:

- attributes ``gen_ai.input.messages`` / ``gen_ai.output.messages`` (JSON text, messages with ``parts``) and
  ``gen_ai.system_instructions`` (semantic conventions 1.37+);
- events ``gen_ai.system.message`` / ``gen_ai.user.message`` / ``gen_ai.assistant.message`` / ``gen_ai.choice``;
- attributes ``gen_ai.prompt`` / ``gen_ai.completion`` (text or JSON), or ``gen_ai.prompt.N.role|content`` and
  ``gen_ai.completion.N.content`` (OpenLLMetry).

Span and resource attributes ``user.*`` become segment attributes (``user.id`` / ``enduser.id`` the user id);
``deployment.environment`` (else ``service.name``) is the deployment. Spans without ``gen_ai.*`` attributes
(HTTP, database...) and embedding calls are not conversation turns and are passed over. The raw text kept for a
quarantined span is ``{"resource": {...}, "span": {...}}``, so it can be retried on its own.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import orjson

from collectors import (
    ROLE_ALIASES,
    Collector,
    RawRecord,
    RecordError,
    Turn,
    iter_lines,
    json_type,
    model_and_version,
    parse_json,
    parse_ts,
    strip_bom,
    text_content,
    user_attributes,
)
from monitor.errors import IngestError

NOT_TURNS = ("embeddings", "execute_tool", "create_agent")
MAX_DOCUMENT = 512 * 1024 * 1024


def any_value(v: Any) -> Any:
    """Decode an OTLP AnyValue ({"stringValue": ...}, {"intValue": "3"}, arrays, key-value lists)."""
    if not isinstance(v, dict):
        return v
    if "stringValue" in v:
        return v["stringValue"]
    if "intValue" in v:
        return int(v["intValue"])
    if "doubleValue" in v:
        return float(v["doubleValue"])
    if "boolValue" in v:
        return bool(v["boolValue"])
    if "arrayValue" in v:
        return [any_value(x) for x in (v["arrayValue"] or {}).get("values", [])]
    if "kvlistValue" in v:
        return attributes((v["kvlistValue"] or {}).get("values", []))
    if "bytesValue" in v:
        return v["bytesValue"]
    return None


def attributes(items: Any) -> dict[str, Any]:
    if not isinstance(items, list):
        return {}
    return {a["key"]: any_value(a.get("value")) for a in items if isinstance(a, dict) and "key" in a}


def _is_genai(span: dict) -> bool:
    for a in span.get("attributes") or []:
        if isinstance(a, dict) and str(a.get("key", "")).startswith("gen_ai."):
            return True
    return any(str(e.get("name", "")).startswith("gen_ai.") for e in span.get("events") or [] if isinstance(e, dict))


def spans_of(doc: Any) -> Iterator[dict]:
    """The wrapped GenAI spans ({"resource": attrs, "scope": name, "span": span}) of an export request."""
    for wrapped in all_spans(doc):
        if wrapped is not None:
            yield wrapped


def all_spans(doc: Any) -> Iterator[dict | None]:
    """Every span of an export request in order: wrapped when it is a GenAI span, else None (counted, passed over)."""
    if not isinstance(doc, dict):
        return
    for rs in doc.get("resourceSpans") or []:
        resource = attributes(((rs or {}).get("resource") or {}).get("attributes"))
        for ss in rs.get("scopeSpans") or rs.get("instrumentationLibrarySpans") or []:
            scope = ((ss or {}).get("scope") or {}).get("name")
            for span in ss.get("spans") or []:
                if isinstance(span, dict) and _is_genai(span):
                    yield {"resource": resource, "scope": scope, "span": span}
                else:
                    yield None


class OtlpCollector(Collector):
    name = "otlp"
    description = 'OTLP JSON with "resourceSpans" and gen_ai.* span attributes'
    extensions = (".json", ".jsonl")

    def sniff(self, head: bytes, path: Path | None = None) -> bool:
        return b'"resourceSpans"' in head

    def records(self, path: Path) -> Iterator[RawRecord]:
        with open(path, "rb") as f:
            first = f.readline(self.ingest.max_line_bytes + 1)
        try:
            orjson.loads(strip_bom(first))
            jsonl = True
        except orjson.JSONDecodeError:
            jsonl = False  # a pretty-printed single document
        n = 0
        if jsonl:
            for lineno, line, err, offset in iter_lines(path, self.ingest.max_line_bytes):
                if err is None:
                    try:
                        doc = parse_json(line)
                    except RecordError as e:
                        err = e
                if err is not None:
                    n += 1
                    yield RawRecord(n, line, None, RecordError(err.field, f"line {lineno}: {err.reason}"), offset)
                    continue
                for wrapped in all_spans(doc):
                    n += 1  # the span's number among all spans of the file, GenAI or not
                    if wrapped is not None:
                        yield RawRecord(n, orjson.dumps(wrapped), wrapped, None, offset)
            return
        size = path.stat().st_size
        if size > MAX_DOCUMENT:
            raise IngestError(f"{path}: OTLP JSON document of {size:,} bytes is too large to load whole",
                              "export OTLP as JSON lines (one request per line)")
        blob = path.read_bytes()
        try:
            doc = parse_json(blob)
        except RecordError as e:
            yield RawRecord(1, blob[:4096], None, e, size)
            return
        for wrapped in all_spans(doc):
            n += 1
            if wrapped is not None:
                yield RawRecord(n, orjson.dumps(wrapped), wrapped, None, size)

    def to_turns(self, obj: Any) -> list[dict]:
        if isinstance(obj, dict) and "resourceSpans" in obj:  # a whole export request (HTTP push)
            return [t for w in spans_of(obj) for t in self.to_turns(w)]
        if not isinstance(obj, dict) or not isinstance(obj.get("span"), dict):
            raise RecordError("span", "not an OTLP span record")
        try:
            return self._span_turns(obj)
        except RecordError as e:  # name the span: its number counts every span of the file, this finds it for sure
            sid = obj["span"].get("spanId")
            raise RecordError(e.field, f"{e.reason} (span {sid})" if sid else e.reason) from None

    def _span_turns(self, obj: dict) -> list[dict]:
        span = obj["span"]
        resource = obj.get("resource") or {}
        attrs = attributes(span.get("attributes"))
        op = attrs.get("gen_ai.operation.name")
        if op in NOT_TURNS:
            return []
        start = span.get("startTimeUnixNano") or span.get("endTimeUnixNano")
        if start in (None, "", "0", 0):
            raise RecordError("startTimeUnixNano", "missing timestamp")
        try:
            nanos = int(start)
        except (TypeError, ValueError):
            raise RecordError("startTimeUnixNano", f"unparseable timestamp {start!r}") from None
        ts = parse_ts(nanos / 1e9, "startTimeUnixNano")
        mkey = "gen_ai.response.model" if attrs.get("gen_ai.response.model") else "gen_ai.request.model"
        model, version = model_and_version(attrs.get(mkey), attrs.get("gen_ai.model.version"), mkey,
                                           "gen_ai.model.version")
        system, history, reply = self._messages(span, attrs)
        if reply is None or not reply.strip():
            raise RecordError("gen_ai.output.messages", "no assistant message (no completion in attributes or events)")
        user_message = next((t for r, t in reversed(history) if r == "user"), "")
        turn_index = sum(1 for r, _ in history if r == "assistant")
        user = {k[5:]: v for k, v in {**resource, **attrs}.items() if k.startswith("user.")}
        if "enduser.id" in attrs and "id" not in user:
            user["id"] = attrs["enduser.id"]
        user_id, segs = user_attributes(user, "user.*")
        conv = (attrs.get("gen_ai.conversation.id") or attrs.get("session.id") or span.get("traceId"))
        if not conv:
            raise RecordError("gen_ai.conversation.id", "no conversation id and no traceId")
        deployment = resource.get("deployment.environment.name") or resource.get("deployment.environment") \
            or resource.get("service.name")
        extra = {k: v for k, v in attrs.items() if k.startswith("gen_ai.") and k not in _CONTENT_KEYS
                 and not k.startswith(("gen_ai.prompt.", "gen_ai.completion."))}
        extra.update({"trace_id": span.get("traceId"), "span_id": span.get("spanId"), "span_name": span.get("name")})
        if obj.get("scope"):
            extra["scope"] = obj["scope"]
        return [Turn.make(conversation_id=str(conv), turn_index=turn_index, ts=ts, model=model, model_version=version,
                          deployment=None if deployment is None else str(deployment), user_id=user_id,
                          user_attrs=segs, system_prompt="\n".join(system) if system else None,
                          user_message=user_message, assistant_message=reply, extra=extra)]

    def _messages(self, span: dict, attrs: dict) -> tuple[list[str], list[tuple[str, str]], str | None]:
        system: list[str] = []
        history: list[tuple[str, str]] = []
        reply: str | None = None
        if "gen_ai.input.messages" in attrs or "gen_ai.output.messages" in attrs:
            for i, (role, text) in enumerate(_json_messages(attrs.get("gen_ai.input.messages"),
                                                            "gen_ai.input.messages")):
                (system.append(text) if role == "system" else history.append((role, text)))
            outs = _json_messages(attrs.get("gen_ai.output.messages"), "gen_ai.output.messages")
            reply = next((t for r, t in outs if r == "assistant"), None)
            if reply is None and "gen_ai.completion" in attrs:  # instrumentations mixing the conventions
                outs = _json_messages(attrs["gen_ai.completion"], "gen_ai.completion", default_role="assistant")
                reply = next((t for r, t in outs if r == "assistant"), None)
            si = attrs.get("gen_ai.system_instructions")
            if si:
                system.append(text_content(_maybe_json(si), "gen_ai.system_instructions"))
            return system, history, reply
        events = [e for e in span.get("events") or [] if isinstance(e, dict)]
        if any(str(e.get("name", "")).endswith((".message", "gen_ai.choice")) for e in events):
            for e in events:
                name = str(e.get("name", ""))
                ea = attributes(e.get("attributes"))
                if name == "gen_ai.choice":
                    msg = ea.get("message")
                    # Span-event attributes are flat, so SDKs send the message as JSON text, as a flattened
                    # `message.content`, or as plain `content`.
                    msg = _maybe_json(msg) if msg is not None else {
                        "content": ea.get("message.content", ea.get("content"))}
                    if reply is None:
                        reply = text_content(msg.get("content") if isinstance(msg, dict) else msg,
                                             "gen_ai.choice.message.content")
                elif name.startswith("gen_ai.") and name.endswith(".message"):
                    role = name[len("gen_ai."):-len(".message")]
                    text = text_content(_maybe_json(ea.get("content")), f"{name}.content")
                    (system.append(text) if role == "system" else history.append((ROLE_ALIASES.get(role, role), text)))
            return system, history, reply
        if "gen_ai.prompt" in attrs or "gen_ai.completion" in attrs:
            for role, text in _json_messages(attrs.get("gen_ai.prompt"), "gen_ai.prompt", default_role="user"):
                (system.append(text) if role == "system" else history.append((role, text)))
            outs = _json_messages(attrs.get("gen_ai.completion"), "gen_ai.completion", default_role="assistant")
            reply = next((t for r, t in outs if r == "assistant"), None)
            return system, history, reply
        # OpenLLMetry: gen_ai.prompt.0.role / gen_ai.prompt.0.content, gen_ai.completion.0.content
        i = 0
        while f"gen_ai.prompt.{i}.content" in attrs:
            role = ROLE_ALIASES.get(str(attrs.get(f"gen_ai.prompt.{i}.role", "user")))
            if role is None:
                raise RecordError(f"gen_ai.prompt.{i}.role", f"unknown role {attrs.get(f'gen_ai.prompt.{i}.role')!r}")
            text = text_content(attrs[f"gen_ai.prompt.{i}.content"], f"gen_ai.prompt.{i}.content")
            (system.append(text) if role == "system" else history.append((role, text)))
            i += 1
        if "gen_ai.completion.0.content" in attrs:
            reply = text_content(attrs["gen_ai.completion.0.content"], "gen_ai.completion.0.content")
        return system, history, reply


_CONTENT_KEYS = frozenset({"gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.system_instructions",
                           "gen_ai.prompt", "gen_ai.completion"})


_JSON_ONLY = frozenset({"gen_ai.input.messages", "gen_ai.output.messages"})


def _maybe_json(v: Any) -> Any:
    if isinstance(v, str) and v[:1] in ("[", "{"):
        try:
            return orjson.loads(v)
        except orjson.JSONDecodeError:
            return v
    return v


def _json_messages(value: Any, fld: str, default_role: str = "user") -> list[tuple[str, str]]:
    """Messages from a JSON attribute: a list of {role, content | parts}, a single message, or plain text."""
    if value is None:
        return []
    # gen_ai.input/output.messages are JSON by the conventions; gen_ai.prompt/completion may be plain text (which
    # may well start with "[").
    if fld in _JSON_ONLY and isinstance(value, str) and value.lstrip()[:1] in ("[", "{"):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError as e:  # JSON that is broken, not plain text: say so rather than guess
            raise RecordError(fld, f"malformed JSON ({e}): fix the instrumentation that writes this attribute")
    value = _maybe_json(value)
    if isinstance(value, str):
        return [(default_role, value)]
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        raise RecordError(fld, f"must be a JSON list of messages, got {json_type(value)}")
    out = []
    for i, m in enumerate(value):
        if isinstance(m, str):
            out.append((default_role, m))
            continue
        if not isinstance(m, dict):
            raise RecordError(f"{fld}[{i}]", f"must be an object, got {json_type(m)}")
        raw_role = m.get("role", default_role)
        role = ROLE_ALIASES.get(raw_role) if isinstance(raw_role, str) else None
        if role is None:
            raise RecordError(f"{fld}[{i}].role", f"unknown role {raw_role!r}")
        content = m.get("parts") if "parts" in m else m.get("content")
        out.append((role, text_content(content, f"{fld}[{i}].content")))
    return out
