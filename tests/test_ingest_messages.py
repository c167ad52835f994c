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


def _feedback_rows(home) -> dict:
    from monitor.db import connect

    con = connect(home)
    try:
        rows = con.execute("SELECT conversation_id, feedback, feedback_score, extra FROM turns").fetchall()
    finally:
        con.close()
    return {c: (fb, sc, json.loads(ex) if ex else {}) for c, fb, sc, ex in rows}


@pytest.mark.parametrize("n_lines", [3, 3000])  # a small file takes the general path, a large one the fast paths
def test_feedback_not_understood_is_kept_as_written(home, tmp_path, n_lines):
    """'meh' or {"stars": 4} is no up/down: the turn is ingested without a label and keeps the value in extra."""
    f = tmp_path / "feedback.jsonl"
    values = ["meh", {"stars": 4}, "up"]
    with f.open("w") as out:
        for i in range(n_lines):
            out.write(json.dumps({
                "conversation_id": f"c{i}", "timestamp": "2026-11-03T10:00:00Z", "model": "m",
                "feedback": values[i % 3],
                "messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]}) + "\n")
    s = ingest_paths(home, [f])
    assert (s.ingested, s.quarantined) == (n_lines, 0)
    rows = _feedback_rows(home)
    assert rows["c0"] == (None, None, {"feedback": "meh"})
    assert rows["c1"] == (None, None, {"feedback": {"stars": 4}})
    assert rows["c2"][:2] == ("up", 1.0) and "feedback" not in rows["c2"][2]
