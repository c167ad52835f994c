"""The canonical fast path stores exactly what the general path stores: same turns, segments, quarantine, counts."""
import datetime as dt
import json
import random
from pathlib import Path

import duckdb
import pytest

import monitor.ingest as ingest_mod
import collectors.fast_canonical as fast_mod
from collectors.fast_canonical import FastCanonical, block_rows, chunk_rows
from monitor.home import Home
from monitor.ingest import Ingestor, ingest_paths

LOGS = Path(__file__).resolve().parent / "fixtures" / "logs"
REPO = Path(__file__).resolve().parents[1]
TURN_COLS = ("turn_id, content_hash, conversation_id, turn_index, ts, model, model_version, deployment, user_id, "
             "user_attrs, system_prompt, user_message, assistant_message, feedback, feedback_score, redactions, "
             "redaction_counts, extra, source, source_format, source_file, source_line, date")
Q_COLS = "quarantine_id, source_file, source_line, source_format, field, reason, raw"


def _rows(home: Home, table: str, cols: str) -> list[tuple]:
    files = [str(p) for p in home.lake.files(table)]
    if not files:
        return []
    con = duckdb.connect()
    try:
        return con.execute(f"SELECT {cols} FROM read_parquet($f, hive_partitioning=true) ORDER BY ALL",
                           {"f": files}).fetchall()
    finally:
        con.close()


def _snapshot(home: Home) -> dict:
    return {"turns": _rows(home, "turns", TURN_COLS), "segments": _rows(home, "segments", "*"),
            "quarantine": _rows(home, "quarantine", Q_COLS)}


def _counts(s) -> list[tuple]:
    return [(f.format, f.records, f.read, f.ingested, f.duplicates, f.quarantined, f.note) for f in s.files]


def _run(tmp_path: Path, name: str, files: list[Path], fast: bool, monkeypatch, batch_rows: int = 50,
         workers: int | None = 0, twice: bool = False, toml: str = ""):
    root = tmp_path / name
    root.mkdir()
    (root / "monitor.toml").write_text(f"[ingest]\nbatch_rows = {batch_rows}\n{toml}")
    home = Home.open(root)
    monkeypatch.setattr(Ingestor, "fast_path", fast)
    monkeypatch.setattr(Ingestor, "workers", workers)
    summaries = [ingest_paths(home, files, now=NOW)]
    if twice:
        summaries.append(ingest_paths(home, files, now=NOW))
    return home, [_counts(s) for s in summaries]


NOW = dt.datetime(2026, 11, 20, 12, 0, 0)
WORDS = "the router reset refund policy how do I make bread flour doctor symptoms password water".split()


def _text(rnd: random.Random) -> str:
    t = " ".join(rnd.choices(WORDS, k=rnd.randint(0, 12)))
    extra = rnd.random()
    if extra < 0.08:
        t += f" mail me at jo.{rnd.randint(1, 99)}@example.org"
    elif extra < 0.14:
        t += " call +44 20 7946 0958 or (555) 123-4567"
    elif extra < 0.18:
        t += " card 4111 1111 1111 1111 from 10.0.0.12 key sk-abcdefghijklmnopqrstuvwx"
    elif extra < 0.21:
        t += " at 12:30:00 on 2024-05-01, build 1.2.3"
    elif extra < 0.23:
        t += " Bearer abcdefghijklmnop1234 and eyJhbGciOiJIUzI1.eyJzdWIiOiIxMjM0.SflKxwRJSMeKKF2QT4f"
    elif extra < 0.25:
        t += " tab\there, bell\x07, newline\nand unicode é 中文 \u2028 👍"
    elif extra < 0.26:
        t += " ٣٤٥٦٧٨٩٠١٢ arabic digits"
    return t


def _timestamp(rnd: random.Random, i: int):
    base = dt.datetime(2026, 10, 1) + dt.timedelta(seconds=i * 977 + rnd.randint(0, 999))
    k = rnd.random()
    if k < 0.55:
        return base.isoformat() + "Z"
    if k < 0.65:
        return base.isoformat(timespec="milliseconds") + "+05:30"
    if k < 0.72:
        return base.isoformat()
    if k < 0.76:
        return int(base.replace(tzinfo=dt.timezone.utc).timestamp())
    if k < 0.79:
        return int(base.replace(tzinfo=dt.timezone.utc).timestamp() * 1000)
    if k < 0.81:
        return " " + base.isoformat() + "Z "
    if k < 0.83:
        return "2027-06-01T00:00:00Z"  # far future: quarantined
    if k < 0.84:
        return "1985-01-01T00:00:00Z"
    if k < 0.85:
        return "2026-02-30T10:00:00Z"
    if k < 0.86:
        return None
    if k < 0.87:
        return "yesterday"
    return base.isoformat(sep=" ") + "-02:00"


def _record(rnd: random.Random, i: int):
    k = rnd.random
    msgs = [{"role": "user", "content": _text(rnd)}, {"role": "assistant", "content": _text(rnd)}]
    r = k()
    if r < 0.12:
        msgs.insert(0, {"role": "system", "content": "You are helpful." if k() < 0.8 else ""})
    elif r < 0.2:  # a whole conversation: several turns
        msgs += [{"role": "user", "content": _text(rnd)}, {"role": "assistant", "content": _text(rnd)}]
    elif r < 0.23:
        msgs = [{"role": "human", "content": _text(rnd)}, {"role": "gpt", "content": _text(rnd)}]
    elif r < 0.25:
        msgs[1]["content"] = [{"type": "text", "text": _text(rnd)}]
    elif r < 0.27:
        msgs[1]["timestamp"] = "2026-10-02T00:00:00Z"
    elif r < 0.28:
        msgs = []
    elif r < 0.29:
        msgs = [{"role": "user", "content": "hi"}]
    elif r < 0.30:
        msgs[0]["role"] = "narrator"
    elif r < 0.31:
        msgs[1]["content"] = None
    elif r < 0.32:
        msgs[0]["content"] = 42
    elif r < 0.33:
        msgs = [{"role": "user", "content": "a"}, {"role": "user", "content": "b"},
                {"role": "assistant", "content": "c"}]
    rec: dict = {"conversation_id": f"conv-{rnd.randint(0, 400)}", "timestamp": _timestamp(rnd, i),
                 "model": rnd.choice(["assistant@2026-10", "assistant", "gpt-4o", "m@", "a@b@c"]), "messages": msgs}
    r = k()
    if r < 0.05:
        rec["conversation_id"] = rnd.randint(0, 10**6)
    elif r < 0.08:
        del rec["conversation_id"]
    elif r < 0.09:
        rec["conversation_id"] = ""
    elif r < 0.10:
        rec["conversation_id"] = True
    r = k()
    if r < 0.5:
        rec["turn"] = rnd.randint(1, 5)
    elif r < 0.52:
        rec["turn"] = rnd.choice([0, -1, True, 1.0, "2", 2**40])
    r = k()
    if r < 0.6:
        user = {"id": f"u{rnd.randint(0, 50)}", "language": rnd.choice(["en", "de", "hi"]),
                "region": rnd.choice(["EU", "NA", None])}
        if k() < 0.2:
            user.update({"age_band": "25-34", "verified": k() < 0.5, "score": rnd.choice([3, 2.5, 1e20]),
                         "email": "x@y.z", "account_id": "a1", "tags": ["x"], "Ünï": "ok", "quote\"key": "v\"al"})
        if k() < 0.1:
            user = {"user_id": rnd.randint(1, 9), "language": "fr"}
        if k() < 0.05:
            user = {"id": True, "language": "fr"}
        rec["user"] = user
    elif r < 0.63:
        rec["user"] = "u-1"
    r = k()
    if r < 0.3:
        rec["feedback"] = rnd.choice(["up", "down", " UP ", "thumbs_down", "meh", 1, -1, 0, True, None,
                                      {"rating": "up", "score": 0.5}, [1]])
    r = k()
    if r < 0.5:
        rec["metadata"] = {"deployment": rnd.choice(["web", "api", 7, None]), "app_version": "3.2"}
        if k() < 0.2:
            rec["metadata"]["model_version"] = rnd.choice(["2026-10", "", 3, None])
        if k() < 0.1:
            rec["metadata"] = {"deployment": "web"}
    elif r < 0.52:
        rec["metadata"] = "web"
    r = k()
    if r < 0.05:
        rec["model_version"] = rnd.choice(["2026-11", None, ""])
    if k() < 0.05:
        rec["deployment"] = rnd.choice(["edge", None, 5])
    if k() < 0.08:
        rec["request_id"] = f"req-{i}"
        rec["latency_ms"] = rnd.choice([12, 3.5, None, {"p50": 1}])
    if k() < 0.02:
        del rec["model"]
    return rec


def _mixed_file(path: Path, n: int = 1500, seed: int = 11) -> Path:
    rnd = random.Random(seed)
    lines: list[bytes] = []
    for i in range(n):
        r = rnd.random()
        if r < 0.02:
            lines.append(rnd.choice([b"{not json", b"[1, 2]", b'"text"', b"", b"   ", b'{"a": NaN}',
                                     b'{"conversation_id": "x", "messages": [],}',
                                     '{"conversation_id": "caf\xe9"}'.encode("latin-1")]))
            continue
        if r < 0.06 and lines:
            lines.append(rnd.choice(lines))  # an exact duplicate line somewhere later
            continue
        rec = _record(rnd, i)
        raw = json.dumps(rec, ensure_ascii=rnd.random() < 0.5)
        if r < 0.07:  # the same keys twice: orjson keeps the last one
            raw = raw[:-1] + ', "model": "dup@1"}'
        lines.append(raw.encode())
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def _assert_same(tmp_path, monkeypatch, files, **kw):
    slow_home, slow_counts = _run(tmp_path, "slow", files, False, monkeypatch, **kw)
    fast_home, fast_counts = _run(tmp_path, "fast", files, True, monkeypatch, **kw)
    assert fast_counts == slow_counts
    a, b = _snapshot(slow_home), _snapshot(fast_home)
    for table in a:
        assert len(a[table]) == len(b[table]), table
        for x, y in zip(a[table], b[table]):
            assert x == y, table
    return a, slow_counts


def test_fixtures_same_rows_both_paths(tmp_path, monkeypatch):
    files = sorted(p for p in LOGS.iterdir() if p.suffix in (".jsonl", ".json", ".csv")
                   and p.name not in ("not_a_log_format.jsonl",))
    snap, counts = _assert_same(tmp_path, monkeypatch, files)
    assert len(snap["turns"]) > 20 and len(snap["quarantine"]) >= 10


def test_generated_mixed_file_same_rows_both_paths(tmp_path, monkeypatch):
    f = _mixed_file(tmp_path / "mixed.jsonl")
    snap, counts = _assert_same(tmp_path, monkeypatch, [f], twice=True)
    (fmt, records, read, ingested, dups, quarantined, _), again = counts[0][0], counts[1][0]
    assert read == ingested + dups + quarantined and ingested > 700 and dups > 40 and quarantined > 100
    assert again[3] == 0 and again[2] == again[4]  # the second run finds everything already there
    assert any(r[15] > 0 for r in snap["turns"])  # redactions happened


def test_generated_mixed_file_parallel_workers_small_chunks(tmp_path, monkeypatch):
    # Tiny chunks and batches, two worker processes: chunk and batch boundaries fall everywhere.
    monkeypatch.setattr(ingest_mod, "CHUNK_BYTES", 1_000)  # ranges start and end inside lines
    monkeypatch.setattr(ingest_mod, "PARALLEL_MIN_BYTES", 0)
    f = _mixed_file(tmp_path / "mixed.jsonl", n=900, seed=5)
    _assert_same(tmp_path, monkeypatch, [f], batch_rows=23, workers=2)


def test_over_long_line_and_blank_lines_same_both_paths(tmp_path, monkeypatch):
    good = (LOGS / "missing_model.jsonl").read_text().splitlines()[0]
    huge = json.dumps({"conversation_id": "big", "timestamp": "2026-11-03T14:00:00Z", "model": "m",
                       "messages": [{"role": "user", "content": "x" * 3_000_000},
                                    {"role": "assistant", "content": "ok"}]})
    f = tmp_path / "long.jsonl"
    f.write_text(good + "\n\n  \n" + huge + "\n" + good.replace("c-100", "c-103").replace("10 seconds", "12 s") + "\n")
    monkeypatch.setattr(ingest_mod, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(ingest_mod, "CHUNK_BYTES", 100_000)  # the long line spans many ranges
    snap, counts = _assert_same(tmp_path, monkeypatch, [f], workers=2, toml="max_line_bytes = 1000000\n")
    assert counts[0][0][1:6] == (3, 3, 2, 0, 1)
    assert snap["quarantine"][0][2] == 4  # line number counts the blank lines


def test_fast_path_takes_the_benchmark_records(tmp_path):
    """The generated benchmark lines are all of the simple shape: none is left to the general path."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_ingest", REPO / "bench" / "bench_ingest.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    path = tmp_path / "b.jsonl"
    bench.generate(path, 300)
    lines = path.read_bytes().splitlines()
    table, segs, slow = chunk_rows(lines, FastCanonical(NOW, 60, True, "canonical"))
    assert slow == [] and table.num_rows == 300 and segs.num_rows == 900
    assert sum(table.column("redactions").to_pylist()) == 12  # e-mail + phone in every 50th prompt
    # The column-wise path takes every line, the six with personal data too (their messages go through redact
    # one by one), and builds the same table.
    parts, todo = [], []
    fast_mod._blocks(lines, 0, len(lines), FastCanonical(NOW, 60, True, "canonical"), parts, todo)
    assert todo == [] and len(parts) == 1
    vt, vsegs, vslow = block_rows(lines, FastCanonical(NOW, 60, True, "canonical"))
    assert vslow == [] and vt.equals(table)
    assert sorted(vsegs.to_pylist(), key=str) == sorted(segs.to_pylist(), key=str)


def _redact_before_gates_were_tightened(text: str):
    """monitor.redact.redact as it was before its cheap pre-checks were narrowed (the reference)."""
    from monitor import redact as r

    counts: dict[str, int] = {}
    if not text:
        return text, counts

    def sub(pattern, kind, s, repl=None):
        new, n = pattern.subn(repl or r.PLACEHOLDERS[kind], s)
        if n:
            counts[kind] = counts.get(kind, 0) + n
        return new

    hints = ("sk-", "AKIA", "ASIA", "hp_", "ho_", "hu_", "hs_", "hr_", "github_pat_", "xox", "AIza")
    if "eyJ" in text:
        text = sub(r._JWT, "token", text)
    if "earer" in text or "EARER" in text:
        text = sub(r._BEARER, "token", text, r"\1 [TOKEN]")
    if ("-" in text or "_" in text or "A" in text) and any(h in text for h in hints):
        text = sub(r._KEYS, "api_key", text)
    if "@" in text:
        text = sub(r._EMAIL, "email", text)
    if text.count(":") >= 2:
        text = r._IPV6.sub(lambda m: r._ipv6(m, counts), text)
    if r._DIGIT_GATE.search(text):
        text = r._DIGITS.sub(lambda m: r._digits(m, counts), text)
    return text, counts


def test_redact_pre_checks_change_nothing():
    from monitor.redact import redact

    rnd = random.Random(3)
    pieces = ["sk-", "proj-", "AKIA", "ASIA", "ghp_", "gho_", "github_pat_", "xoxb-", "AIza", "eyJ", "Bearer ",
              "@", ".", ":", "::", "-", "_", "(", ")", " ", "+", "A", "x", "abc", "ex.com", "٣", "٤٥", "é",
              "0", "1", "4", "5", "12", "555", "1234", "4111", "10.0.0.", "fe80", "Z9"]
    for _ in range(20_000):
        text = "".join(rnd.choice(pieces) for _ in range(rnd.randint(0, 40)))
        assert redact(text) == _redact_before_gates_were_tightened(text), text


def test_clean_file_commits_whole_batches_of_batch_rows(tmp_path, monkeypatch):
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_ingest", REPO / "bench" / "bench_ingest.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    path = tmp_path / "b.jsonl"
    bench.generate(path, 300)
    monkeypatch.setattr(ingest_mod, "CHUNK_BYTES", 20_000)
    home, counts = _run(tmp_path, "fast", [path], True, monkeypatch, batch_rows=70)
    assert counts[0][0][3] == 300
    con = duckdb.connect()
    sizes = sorted(n for (n,) in con.execute("SELECT count(*) FROM read_parquet($f) GROUP BY batch_id",
                                             {"f": [str(p) for p in home.lake.files("turns")]}).fetchall())
    assert sizes == [20, 70, 70, 70, 70]
    segs = _rows(home, "segments", "count(*), count(DISTINCT turn_id)")
    assert segs == [(900, 300)]


@pytest.mark.parametrize("chunk_bytes", [1, 37, 4096])
def test_byte_ranges_split_anywhere_no_trailing_newline(tmp_path, monkeypatch, chunk_bytes):
    # Ranges of 1 byte start inside every line; CRLF endings, blank lines and a last line without a newline.
    f = _mixed_file(tmp_path / "m.jsonl", n=80, seed=chunk_bytes)
    data = f.read_bytes().rstrip(b"\n").replace(b"\n", b"\r\n", 5).replace(b"\n", b"\n\n \n", 3)
    f.write_bytes(data)
    monkeypatch.setattr(ingest_mod, "CHUNK_BYTES", chunk_bytes)
    snap, counts = _assert_same(tmp_path, monkeypatch, [f], batch_rows=9)
    assert counts[0][0][1] > 60


def test_redaction_off_same_both_paths(tmp_path, monkeypatch):
    f = _mixed_file(tmp_path / "m.jsonl", n=300, seed=2)
    snap, _ = _assert_same(tmp_path, monkeypatch, [f], toml="redact_pii = false\n")
    assert any("@example.org" in (r[11] or "") for r in snap["turns"])
    assert all(r[15] == 0 for r in snap["turns"])


def _plain_record(rnd: random.Random, i: int) -> dict:
    """A record of the shape the column-wise path takes, with the values most likely to trip it up."""
    k = rnd.random
    def pick(plain, odd, p=0.12):
        return rnd.choice(odd) if k() < p else rnd.choice(plain)

    words = " ".join(rnd.choices(WORDS, k=rnd.randint(0, 12)))
    text = pick(["plain words", "", "quote \" and back\\slash", "tab\there\nnewline\r\x07\x00 bell", "one: colon",
                 "unicode é 中文 \u2028 👍 \ud7ff", "<html>&amp;</html>", "\\u0041 literal", "x_y ho_ hum",
                 "2026-01-02"],
                ["two: colons: here", "mail a@b.co", "call +44 20 7946 0958", "٣٤٥٦٧٨٩٠١٢", "v 1.2.3",
                 "sk-abcdefghijklmnopqrstuvwx", "Bearer x", "eyJ not a jwt", "AKIA"], p=0.2)
    msgs = [{"role": "user", "content": text + " " + words}, {"role": "assistant", "content": words[::-1]}]
    if k() < 0.2:
        msgs.insert(0, {"role": "system", "content": rnd.choice(["You are helpful.", "", "sys \"q\""])})
    if k() < 0.03:
        msgs[-1]["role"] = "user"  # not an exchange: the general path decides
    base = dt.datetime(2026, 10, 1) + dt.timedelta(seconds=i * 977, microseconds=rnd.choice([0, 0, 1, 500000]))
    ts = pick([base.isoformat() + "Z", base.isoformat(), "2024-02-29T10:00:00Z", "2026-11-20T12:59:00Z"],
              ["2026-02-30T10:00:00Z", "2026-10-01T10:00:00.000000Z", "2026-10-01T10:00:00.5Z", "2026-10-01T24:00:00Z",
               "2027-06-01T00:00:00Z", "1989-12-31T23:59:59Z", "2026-11-20T13:01:00Z", base.isoformat() + "+00:00"])
    rec: dict = {"conversation_id": rnd.choice([f"c-{rnd.randint(0, 300)}", "", "q\"id", "ü-7"]), "timestamp": ts,
                 "model": rnd.choice(["assistant@2026-10", "assistant", "m@", "a@b@c", "@x", "", "l\n@v"]),
                 "messages": msgs}
    r = k()
    if r < 0.6:
        rec["turn"] = pick([1, 2, 3, 2_147_483_647, None], [2_147_483_648, 0, -3])
    r = k()
    if r < 0.7:
        user = {"id": rnd.choice([f"u{rnd.randint(0, 40)}", None, "q\"u"]),
                "language": rnd.choice(["en", "de", None, "é\"x"]), "region": rnd.choice(["EU", "NA", None])}
        if k() < 0.3:
            user["user_id"] = rnd.choice(["x9", None])
        if k() < 0.3:
            user.update({"verified": rnd.choice([True, False, None]), "visits": rnd.choice([3, -1, 0, None]),
                         "email": "x@y.z", "account_id": "a1", "Ünï": "ok", "quote\"key": "v\"al"})
        if k() < 0.01:
            user["since"] = "2026-01-01"  # read as a timestamp by pyarrow: the block goes per record
        rec["user"] = user
    elif r < 0.8:
        rec["user"] = None
    r = k()
    if r < 0.4:
        rec["feedback"] = rnd.choice(["up", "down", " UP ", "thumbs_down", "meh", None, "👍"])
    r = k()
    if r < 0.6:
        rec["metadata"] = {"deployment": rnd.choice(["web", "api", None]),
                           "app_version": pick(["3.2", "q\""], [None])}
        if k() < 0.2:
            del rec["metadata"]["app_version"]
        if k() < 0.1:
            rec["metadata"] = {}
    elif r < 0.7:
        rec["metadata"] = None
    return rec


def _plain_lines(n: int, seed: int) -> list[bytes]:
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        rec = _plain_record(rnd, i)
        if rnd.random() < 0.5:
            rec = dict(reversed(list(rec.items())))  # key order must not matter
        out.append(json.dumps(rec, ensure_ascii=rnd.random() < 0.5).encode() + rnd.choice([b"\n", b"\r\n", b" \n"]))
    return out


@pytest.mark.parametrize("redact_pii", [True, False])
def test_column_wise_block_equals_per_record(redact_pii):
    """Blocks of tricky but plain records: the column-wise path takes most rows and builds exactly chunk_rows' table."""
    lines = _plain_lines(1200, seed=21 + redact_pii)
    fast = FastCanonical(NOW, 60, redact_pii, "canonical")
    want, want_segs, want_slow = chunk_rows(lines, fast)
    got, got_segs, got_slow = block_rows(lines, fast)
    assert got_slow == want_slow
    assert got.num_rows == want.num_rows
    for name in want.column_names:
        assert got.column(name).to_pylist() == want.column(name).to_pylist(), name
    assert sorted(got_segs.to_pylist(), key=str) == sorted(want_segs.to_pylist(), key=str)
    parts, todo = [], []
    fast_mod._blocks(lines, 0, len(lines), fast, parts, todo)
    taken = sum(p[0].num_rows for p in parts)
    assert taken > 150  # the column-wise path really ran on a good share of the rows


def test_column_wise_path_isolates_bad_lines(tmp_path, monkeypatch):
    # Blocks split down to single lines: every parsable line of the mixed file meets the column-wise path alone.
    monkeypatch.setattr(fast_mod, "_MIN_BLOCK", 1)
    f = _mixed_file(tmp_path / "mixed.jsonl", n=700, seed=17)
    plain = b"".join(_plain_lines(700, seed=4))
    f.write_bytes(f.read_bytes() + plain)
    _assert_same(tmp_path, monkeypatch, [f], batch_rows=41)


def test_column_wise_redaction_equals_per_record():
    """Plain records whose messages hold personal data of every kind: redacted in the block, as row() redacts."""
    rnd = random.Random(8)
    pieces = ["sk-", "proj-", "AKIA", "ASIA", "ghp_", "gho_", "github_pat_", "xoxb-", "AIza", "eyJ", "Bearer ",
              "@", ".", ":", "::", "-", "_", "(", ")", " ", "+", "A", "x", "abc", "ex.com", "٣", "٤٥", "é",
              "0", "1", "4", "5", "12", "555", "1234", "4111", "10.0.0.", "fe80", "Z9", "\\", "\"", "\n"]
    fast = FastCanonical(NOW, 60, True, "canonical")
    lines = []
    for i in range(1500):
        rec = _plain_record(rnd, i)
        for m in rec["messages"]:
            r = rnd.random()
            if r < 0.3:
                m["content"] = "".join(rnd.choice(pieces) for _ in range(rnd.randint(0, 40)))
            elif r < 0.6:
                m["content"] = _text(rnd)
        lines.append(json.dumps(rec, ensure_ascii=rnd.random() < 0.5).encode() + b"\n")
    want, want_segs, want_slow = chunk_rows(lines, fast)
    got, got_segs, got_slow = block_rows(lines, fast)
    assert got_slow == want_slow and got.num_rows == want.num_rows
    for name in want.column_names:
        assert got.column(name).to_pylist() == want.column(name).to_pylist(), name
    assert sorted(got_segs.to_pylist(), key=str) == sorted(want_segs.to_pylist(), key=str)
    parts, todo = [], []
    fast_mod._blocks(lines, 0, len(lines), fast, parts, todo)
    redacted = sum(sum(1 for v in p[0].column("redactions").to_pylist() if v) for p in parts)
    assert redacted > 100  # rows with personal data really were taken (and redacted) column-wise
    assert sum(1 for v in want.column("redactions").to_pylist() if v) > redacted // 2
