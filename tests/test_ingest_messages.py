"""Error wording in JSON terms, a path that is not a regular file, and replies without text."""
import json

import pytest

from monitor.errors import IngestError
from monitor.ingest import ingest_paths, quarantine_rows


def test_json_null_record_is_worded_in_json_terms(home, tmp_path):
    f = tmp_path / "null_record.jsonl"
    ok = {"conversation_id": "c", "timestamp": "2026-11-03T10:00:00Z", "model": "m",
          "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}
    f.write_text(json.dumps(ok) + "\nnull\n[1]\n")
    ingest_paths(home, [f])
    reasons = sorted(r["reason"] for r in quarantine_rows(home))
    assert reasons == ["record must be a JSON object, got a list", "record must be a JSON object, got null"]


def test_device_is_not_a_regular_file(home):
    with pytest.raises(IngestError) as e:
        ingest_paths(home, ["/dev/null"])
    assert "/dev/null: not a regular file" in e.value.message and "no such file" not in e.value.message


@pytest.mark.parametrize("name, line, field", [
    ("openai_tool_call.jsonl",
     {"request": {"model": "gpt-4o", "messages": [{"role": "user", "content": "weather?"}]},
      "response": {"created": 1762180931, "model": "gpt-4o", "choices": [{"message": {
          "role": "assistant", "content": None, "tool_calls": [{"id": "t1", "type": "function"}]}}]}},
     "response.choices[0].message.content"),
    ("canonical_null_reply.jsonl",
     {"conversation_id": "c", "timestamp": "2026-11-03T10:00:00Z", "model": "m",
      "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": None}]},
     "messages[1].content"),
])
def test_reply_without_text_is_quarantined(home, tmp_path, name, line, field):
    f = tmp_path / name
    f.write_text(json.dumps(line) + "\n")
    s = ingest_paths(home, [f])
    assert (s.ingested, s.quarantined) == (0, 1)
    (q,) = quarantine_rows(home)
    assert q["field"] == field and "content is null" in q["reason"]
