"""Every collector format, from real-looking fixtures to turn rows in the lake."""
import datetime as dt
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from collectors import detect, get_collector, registry
from monitor.db import connect
from monitor.home import Home
from monitor.ingest import ingest_paths

LOGS = Path(__file__).resolve().parent / "fixtures" / "logs"


def turns(home, where="true"):
    con = connect(home)
    try:
        return con.execute(f"SELECT * FROM turns WHERE {where} ORDER BY conversation_id, turn_index").df().to_dict("records")
    finally:
        con.close()


def segments(home):
    con = connect(home)
    try:
        return sorted(con.execute("SELECT t.conversation_id, s.attribute, s.value FROM segments s JOIN turns t "
                                  "USING (turn_id)").fetchall())
    finally:
        con.close()


def test_registry_has_builtins_via_entry_points():
    assert {"canonical", "openai", "sharegpt", "tabular", "otlp"} <= set(registry())


@pytest.mark.parametrize("name, fmt", [
    ("canonical_conversations.jsonl", "canonical"), ("openai_pairs.jsonl", "openai"),
    ("sharegpt_conversations.jsonl", "sharegpt"), ("lmsys_conversation.jsonl", "sharegpt"),
    ("wildchat_conversation.jsonl", "sharegpt"), ("sharegpt_array.json", "sharegpt"),
    ("tabular_mapped.csv", "tabular"), ("otlp_events.json", "otlp"),
    ("otlp_input_output_messages.jsonl", "otlp"), ("otlp_prompt_completion.json", "otlp"),
])
def test_detects_format(name, fmt):
    assert detect(LOGS / name).name == fmt


def test_canonical_multi_turn_versions_segments_feedback(home):
    s = ingest_paths(home, [LOGS / "canonical_conversations.jsonl"])
    assert (s.read, s.ingested, s.records) == (5, 5, 4)
    rows = {(r["conversation_id"], r["turn_index"]): r for r in turns(home)}
    assert set(rows) == {("c-100", 0), ("c-100", 1), ("c-200", 0), ("c-200", 1), ("c-201", 0)}
    a, b = rows[("c-200", 0)], rows[("c-200", 1)]
    # One row per assistant message, each with the user message it answers; PII redacted with counts.
    assert a["user_message"] == "My internet keeps dropping. My account email is [EMAIL]."
    assert a["assistant_message"].startswith("Sorry about that.")
    assert b["user_message"] == "Blinking orange. You can call me on [PHONE]."
    assert (a["redactions"], json.loads(a["redaction_counts"])) == (1, {"email": 1})
    assert json.loads(b["redaction_counts"]) == {"phone": 1}
    assert a["system_prompt"] == "You are a helpful support assistant for Acme Broadband."
    assert (a["model"], a["model_version"], a["deployment"]) == ("assistant@2026-10-28", "2026-10-28", "support-web")
    assert json.loads(a["user_attrs"]) == {"language": "en", "region": "UK", "age_band": "35-54",
                                           "gender": "female", "plan": "fibre-500"}
    assert a["user_id"] == "u-7" and a["feedback"] is None and b["feedback"] == "up"
    assert json.loads(a["extra"]) == {"metadata": {"app_version": "5.1.0"}}
    assert a["source_format"] == "canonical" and a["source_line"] == 3
    # name@version split; `turn` numbers logs written one exchange per line; offsets converted to UTC.
    r = rows[("c-201", 0)]
    assert (r["model"], r["model_version"], r["feedback"]) == ("assistant@2026-11", "2026-11", "down")
    assert rows[("c-100", 1)]["ts"] == dt.datetime(2026, 11, 3, 14, 4, 2)
    segs = segments(home)
    assert ("c-200", "gender", "female") in segs and ("c-201", "language", "de") in segs
    assert not [s for s in segs if s[1] in ("id", "user_id")]


def test_openai_pairs(home):
    s = ingest_paths(home, [LOGS / "openai_pairs.jsonl"])
    assert (s.read, s.ingested, s.quarantined) == (4, 3, 1)
    rows = turns(home)
    oa = [r for r in rows if r["conversation_id"] == "oa-1"]
    assert [r["turn_index"] for r in oa] == [0, 1]
    assert oa[1]["user_message"] == "And its population?"
    assert oa[1]["assistant_message"] == "About 10 million in the metropolitan area."
    assert oa[0]["ts"] == dt.datetime(2025, 11, 3, 14, 42, 11)
    assert (oa[0]["model"], oa[0]["deployment"], oa[0]["user_id"]) == ("gpt-4o-2024-08-06", "eu-support", "u-77")
    assert json.loads(oa[0]["user_attrs"]) == {"language": "es", "region": "LATAM"}
    assert oa[0]["system_prompt"] == "Answer briefly."
    lock = [r for r in rows if r["model"] == "gpt-4o-mini-2024-07-18"][0]
    assert lock["feedback"] == "down" and lock["conversation_id"].startswith("h:")
    from monitor.ingest import quarantine_rows

    q = quarantine_rows(home)
    assert q[0]["source_line"] == 4 and q[0]["field"] == "response.choices" and "Rate limit" in q[0]["reason"]


def test_sharegpt_lmsys_wildchat(home):
    s = ingest_paths(home, [LOGS / "sharegpt_conversations.jsonl", LOGS / "lmsys_conversation.jsonl",
                            LOGS / "wildchat_conversation.jsonl", LOGS / "sharegpt_array.json"])
    assert (s.ingested, s.quarantined) == (7, 0)
    rows = {(r["conversation_id"], r["turn_index"]): r for r in turns(home)}
    assert rows[("sg-QWE1", 1)]["user_message"] == "Why are leaves green?"
    assert rows[("sg-QWE1", 0)]["model"] == "unknown"
    assert rows[("sg-QWE2", 0)]["system_prompt"] == "You are a poet."
    ly = rows[("33f01939a744455c869cb234afca47f1", 0)]
    assert ly["model"] == "vicuna-13b" and ly["ts"] == dt.datetime(2023, 7, 22, 4, 26, 40)
    assert json.loads(ly["user_attrs"]) == {"language": "German"}
    wc = rows[("c9ec5b440fbdd2a269333dfc8b6ac5cc", 0)]
    assert json.loads(wc["user_attrs"]) == {"language": "Portuguese", "country": "Brazil", "state": "Sao Paulo"}
    assert wc["ts"] == dt.datetime(2023, 4, 9, 0, 2, 53) and "hashed_ip" not in (wc["extra"] or "")
    assert rows[("arr-2", 0)]["assistant_message"] == "4"


def test_tabular_csv_with_column_mapping(tmp_path):
    home = Home.open(tmp_path / "home")
    (home.root / "monitor.toml").write_text(
        '[ingest.columns]\nconversation_id = "conv_id"\nuser_message = "prompt"\nassistant_message = "reply"\n'
        'timestamp = "ts"\nmodel = "model_name"\n"user.language" = "lang"\n')
    home = Home.open(home.root)
    s = ingest_paths(home, [LOGS / "tabular_mapped.csv"])
    assert (s.ingested, s.quarantined, s.files[0].format) == (3, 0, "tabular")
    rows = {r["conversation_id"]: r for r in turns(home)}
    assert rows["t-2"]["user_message"].startswith("Give me step-by-step")
    assert json.loads(rows["t-1"]["user_attrs"]) == {"language": "en", "region": "EU"}
    assert rows["t-3"]["ts"] == dt.datetime(2025, 11, 5, 8, 2) and rows["t-3"]["model_version"] == "2026-11"
    assert json.loads(rows["t-1"]["extra"]) == {"app": "mobile"}
    assert rows["t-2"]["source_line"] == 3  # the file line the row starts on (line 1 is the header)


def test_tabular_default_names_and_parquet(home, tmp_path):
    s = ingest_paths(home, [LOGS / "tabular_default.csv"])
    assert (s.ingested, s.quarantined) == (2, 1)
    rows = turns(home)
    assert [r["turn_index"] for r in rows] == [0, 1] and rows[0]["feedback"] == "up"
    assert json.loads(rows[1]["user_attrs"]) == {"language": "en"}
    # The same rows as Parquet: same turns, all duplicates of the CSV's.
    table = pacsv.read_csv(LOGS / "tabular_default.csv", convert_options=pacsv.ConvertOptions(
        column_types={"timestamp": pa.string()}))
    pq.write_table(table, tmp_path / "chats.parquet")
    assert detect(tmp_path / "chats.parquet").name == "tabular"
    s2 = ingest_paths(home, [tmp_path / "chats.parquet"])
    assert (s2.read, s2.ingested, s2.duplicates, s2.quarantined) == (3, 0, 2, 1)


def test_otlp_three_conventions(home):
    s = ingest_paths(home, [LOGS / "otlp_events.json", LOGS / "otlp_input_output_messages.jsonl",
                            LOGS / "otlp_prompt_completion.json"])
    assert (s.ingested, s.quarantined) == (4, 1)
    rows = {(r["conversation_id"], r["turn_index"]): r for r in turns(home)}
    ev = rows[("ot-1", 0)]
    assert ev["user_message"] == "Un bon restaurant à Lyon ?"
    assert ev["assistant_message"] == "Essayez un bouchon lyonnais dans le Vieux Lyon."
    assert ev["system_prompt"] == "You are a travel assistant."
    assert (ev["model"], ev["deployment"], ev["user_id"]) == ("gpt-4o-2024-08-06", "prod-eu", "u-301")
    assert ev["ts"] == dt.datetime(2025, 11, 3, 20, 0)
    assert json.loads(ev["user_attrs"]) == {"language": "fr", "region": "EU"}
    io1 = rows[("ot-2", 1)]
    assert (io1["user_message"], io1["assistant_message"], io1["system_prompt"]) == ("And 20%?", "16.", "Be concise.")
    assert json.loads(io1["user_attrs"]) == {"language": "en", "age_band": "25-34"}
    old = [r for r in rows.values() if r["model"] == "gpt-3.5-turbo"][0]
    assert old["user_message"] == "How do I return an item?" and old["deployment"] == "faq-bot"


def test_forced_format_and_config_glob(tmp_path):
    home = Home.open(tmp_path / "home")
    (home.root / "monitor.toml").write_text('[ingest.formats]\n"*.log" = "openai"\n')
    home = Home.open(home.root)
    log = tmp_path / "gateway.log"
    log.write_bytes((LOGS / "openai_pairs.jsonl").read_bytes())
    assert detect(log, home.config).name == "openai"
    s = ingest_paths(home, [LOGS / "sharegpt_conversations.jsonl"], fmt="sharegpt")
    assert s.files[0].format == "sharegpt" and s.ingested == 3


def test_third_party_collector_plugs_in(home, tmp_path, monkeypatch):
    import collectors
    from collectors import Collector, RawRecord, Turn

    class Pipe(Collector):
        name = "pipe"

        def sniff(self, head, path=None):
            return head.startswith(b"PIPE|")

        def records(self, path):
            for i, line in enumerate(open(path), 1):
                yield RawRecord(i, line, line.rstrip("\n").split("|"))

        def to_turns(self, obj):
            _, conv, ts, q, a = obj
            return [Turn.make(conversation_id=conv, ts=collectors.parse_ts(ts), model="m", user_message=q,
                              assistant_message=a)]

    real = collectors.registry
    monkeypatch.setattr(collectors, "registry", lambda: {**real(), "pipe": Pipe})
    p = tmp_path / "x.pipe"
    p.write_text("PIPE|p1|2026-11-01T00:00:00Z|hi|hello\n")
    s = ingest_paths(home, [p])
    assert (s.files[0].format, s.ingested) == ("pipe", 1)
    assert get_collector("canonical").name == "canonical"
