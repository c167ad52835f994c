"""A reply under a turn_id already taken by a different reply is quarantined, not dropped as a duplicate."""
import json

import pytest

from monitor.db import connect
from monitor.home import Home
from monitor.ingest import Ingestor, ingest_paths, quarantine_rows, retry_quarantined


def line(conv, ts, q, a, **kw):
    return json.dumps({"conversation_id": conv, "timestamp": ts, "model": "m@1",
                       "messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}], **kw})


def write(path, *lines):
    path.write_text("".join(x + "\n" for x in lines))
    return path


def rows(home, sql):
    con = connect(home)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def counts(s):
    return s.read, s.ingested, s.duplicates, s.quarantined


@pytest.fixture(params=[True, False], ids=["fast", "general"])
def fast(request, monkeypatch):
    monkeypatch.setattr(Ingestor, "fast_path", request.param)
    return request.param


def test_reused_turn_without_turn_number_is_quarantined_in_the_same_file(home, tmp_path, fast):
    f = write(tmp_path / "no_turn_numbers.jsonl", line("d-1", "2026-11-03T10:00:00Z", "first q", "first a"),
              line("d-1", "2026-11-03T10:05:00Z", "second q", "second a"))
    s = ingest_paths(home, [f])
    assert counts(s) == (2, 1, 0, 1)
    (q,) = quarantine_rows(home)
    assert (q["source_line"], q["field"]) == (2, "turn")
    assert q["reason"].startswith(f"turn_id d-1#0 already holds a different reply (first seen at {f}:1)")
    assert "`turn`" in q["reason"] and "second a" in q["raw"]
    # The same file again: every record is a duplicate (the quarantined one too), nothing new is written.
    assert counts(ingest_paths(home, [f])) == (2, 0, 2, 0)
    assert rows(home, "SELECT count(*) FROM quarantine")[0][0] == 1
    # Retry still fails with the same reason: the turn_id is still taken.
    out = retry_quarantined(home)
    assert (out.retried, out.ingested, out.still_quarantined) == (1, 0, 1)
    assert "already holds a different reply" in out.results[0]["note"]


def test_reused_turn_against_the_lake_is_quarantined(home, tmp_path, fast):
    a = write(tmp_path / "a.jsonl", line("d-1", "2026-11-03T10:00:00Z", "first q", "first a"))
    b = write(tmp_path / "b.jsonl", line("d-2", "2026-11-03T09:00:00Z", "other q", "other a"),
              line("d-1", "2026-11-03T10:05:00Z", "second q", "second a"))
    assert counts(ingest_paths(home, [a])) == (1, 1, 0, 0)
    assert counts(ingest_paths(home, [b])) == (2, 1, 0, 1)
    (q,) = quarantine_rows(home)
    assert f"first seen at {a}:1" in q["reason"] and q["source_line"] == 2 and "second a" in q["raw"]
    assert rows(home, "SELECT assistant_message FROM turns WHERE conversation_id='d-1'") == [("first a",)]
    assert counts(ingest_paths(home, [b])) == (2, 0, 2, 0)


def test_conversation_logged_again_later_adds_only_the_new_turn(home, tmp_path, fast):
    # The same exchange re-logged with a later record time is the same turn: a duplicate, not a conflict.
    msgs = [{"role": "user", "content": "q1"}, {"role": "assistant", "content": "a1"}]
    more = msgs + [{"role": "user", "content": "q2"}, {"role": "assistant", "content": "a2"}]
    rec = {"conversation_id": "c-9", "model": "m@1"}
    f = write(tmp_path / "relogged.jsonl", json.dumps({**rec, "timestamp": "2026-11-03T10:00:00Z", "messages": msgs}),
              json.dumps({**rec, "timestamp": "2026-11-03T10:07:00Z", "messages": more}))
    assert counts(ingest_paths(home, [f])) == (3, 2, 1, 0)
    g = write(tmp_path / "relogged_again.jsonl",
              json.dumps({**rec, "timestamp": "2026-11-03T10:09:00Z", "messages": more}))
    assert counts(ingest_paths(home, [g])) == (2, 0, 2, 0)


def test_reingest_after_switching_redaction_is_still_all_duplicates(tmp_path, fast):
    f = write(tmp_path / "pii.jsonl",
              line("p-1", "2026-11-03T10:00:00Z", "mail me at jane.doe@example.com", "ok jane.doe@example.com"),
              line("p-2", "2026-11-03T10:01:00Z", "call +1 415 555 0134", "sure"))
    home = Home.open(tmp_path / "home")
    assert counts(ingest_paths(home, [f])) == (2, 2, 0, 0)
    (home.root / "monitor.toml").write_text("[ingest]\nredact_pii = false\n")
    home = Home.open(home.root)
    assert counts(ingest_paths(home, [f])) == (2, 0, 2, 0)
    assert quarantine_rows(home) == []
