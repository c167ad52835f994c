"""SQLite state store: migrations applied once, in order; WAL; audit helper."""
from monitor.state import State


def test_migrations_apply_once(tmp_path):
    s = State(tmp_path / "state.sqlite")
    ids = [r["id"] for r in s.query("SELECT id FROM schema_migrations ORDER BY id")]
    assert ids[0] == "001_core" and ids == sorted(ids)
    assert State(tmp_path / "state.sqlite").migrate() == []  # second open applies nothing
    assert s.query("PRAGMA journal_mode")[0]["journal_mode"] == "wal"


def test_audit_and_kv(tmp_path):
    s = State(tmp_path / "state.sqlite")
    with s.tx() as con:
        s.audit(con, "alice", "alert.ack", "alert:1", {"note": "looking"})
    row = s.query("SELECT * FROM audit_log")[0]
    assert row["actor"] == "alice" and row["action"] == "alert.ack" and row["at"].endswith("Z")
    s.put("watermark", {"x": 1})
    assert s.get("watermark") == {"x": 1} and s.get("missing", 5) == 5
