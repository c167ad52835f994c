"""OTLP spans: the real fault of a bad span is named, and its number locates it among all spans of the file."""
from pathlib import Path

from monitor.ingest import ingest_paths, quarantine_rows

LOGS = Path(__file__).resolve().parent / "fixtures" / "logs"


def test_malformed_input_messages_is_named_and_span_located(home):
    # Span 1 is an HTTP span (passed over), span 2 a good GenAI span, span 3 has broken gen_ai.input.messages JSON
    # but a valid gen_ai.completion.
    s = ingest_paths(home, [LOGS / "otlp_malformed_input_messages.json"])
    assert (s.read, s.ingested, s.quarantined) == (2, 1, 1)
    (q,) = quarantine_rows(home)
    assert (q["source_line"], q["field"]) == (3, "gen_ai.input.messages")
    assert q["reason"].startswith("malformed JSON") and q["reason"].endswith("(span s-bad)")
    assert "no assistant message" not in q["reason"]


def test_plain_text_prompt_starting_with_a_bracket_is_still_text(home, tmp_path):
    f = tmp_path / "bracket_prompt.json"
    f.write_text((LOGS / "otlp_malformed_input_messages.json").read_text()
                 .replace('"stringValue": "hi"', '"stringValue": "[INST] hi"'))
    s = ingest_paths(home, [f])
    assert (s.ingested, s.quarantined) == (1, 1)
