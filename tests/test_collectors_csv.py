"""CSV rows: file lines in quarantine, an unterminated quote does not swallow the rest, broken rows retried clearly."""
from monitor.home import Home
from monitor.ingest import ingest_paths, quarantine_rows, retry_quarantined

HEADER = "conversation_id,timestamp,model,user_message,assistant_message,user.language\n"


def row(i, extra=""):
    return f"x{i},2026-11-05T08:0{i}:00Z,m,question {i},answer {i},en{extra}\n"


def test_unterminated_quote_is_named_and_the_rows_after_it_are_read(home, tmp_path):
    f = tmp_path / "unterminated_quote.csv"
    f.write_text(HEADER + row(1) + 'x2,"unterminated,hi,2026-11-05T08:01:00Z,m,q,a\n'
                 + "".join(row(i) for i in range(3, 10)))
    s = ingest_paths(home, [f])
    assert (s.read, s.ingested, s.duplicates, s.quarantined) == (9, 8, 0, 1)
    (q,) = quarantine_rows(home)
    assert q["source_line"] == 3 and q["raw"] == 'x2,"unterminated,hi,2026-11-05T08:01:00Z,m,q,a'
    assert "unterminated quote" in q["reason"] and "runs to line 10 (the end of the file)" in q["reason"]
    assert "close the quote" in q["reason"]
    out = retry_quarantined(home)
    assert out.still_quarantined == 1 and "cannot be retried from quarantine" in out.results[0]["note"]
    assert (ingest_paths(home, [f]).duplicates, len(quarantine_rows(home))) == (9, 1)


def test_quarantine_line_is_the_file_line_the_row_starts_on(home, tmp_path):
    f = tmp_path / "multiline_and_blank.csv"
    f.write_text(HEADER + 'x1,2026-11-05T08:01:00Z,m,"two\nlines",a1,en\n\n' + row(2, ",surplus")
                 + "x3,,m,q3,a3,en\n")
    s = ingest_paths(home, [f])
    assert (s.read, s.ingested, s.quarantined) == (3, 1, 2)
    q = {r["source_line"]: r for r in quarantine_rows(home)}
    assert sorted(q) == [5, 6]
    assert "row has 7 fields, the header has 6" in q[5]["reason"] and q[5]["raw"].startswith("x2,")
    assert q[6]["field"] == "timestamp"


def test_retry_of_a_row_with_the_wrong_field_count_fails_clearly(tmp_path):
    home = Home.open(tmp_path / "home")
    f = tmp_path / "short_row.csv"
    f.write_text(HEADER + "x1,2026-11-05T08:01:00Z,m\n")
    ingest_paths(home, [f])
    out = retry_quarantined(home)
    assert out.still_quarantined == 1
    note = out.results[0]["note"]
    assert "did not split into the header's columns" in note and "got list" not in note


def test_a_field_over_max_line_bytes_is_quarantined_with_4_kb_of_raw_text(tmp_path):
    # As for a JSONL line over the limit: the quarantine keeps a prefix, not megabytes (which redaction then scans).
    root = tmp_path / "home"
    root.mkdir()
    (root / "monitor.toml").write_text("[ingest]\nmax_line_bytes = 100000\n")
    home = Home.open(root)
    f = tmp_path / "huge_field.csv"
    f.write_text(HEADER + row(1) + f'x2,2026-11-05T08:02:00Z,m,q,"{"z" * 300_000}",en\n' + row(3))
    s = ingest_paths(home, [f])
    assert (s.read, s.ingested, s.duplicates, s.quarantined) == (3, 2, 0, 1)
    (q,) = quarantine_rows(home)
    assert q["source_line"] == 3 and q["raw"].startswith("x2,2026-11-05T08:02:00Z,m,q,") and len(q["raw"]) == 4096
    assert "field larger than field limit (100000)" in q["reason"] and "truncated to 4 KB" in q["reason"]
