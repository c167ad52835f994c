"""The JSON examples of docs/formats.md ingest as written: each format's example gives turns, none quarantined."""
import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from monitor.cli import cli

DOC = Path(__file__).resolve().parents[1] / "docs" / "formats.md"


def _examples() -> dict[str, str]:
    """The first ```json block of each format's section, keyed by the section's format name."""
    out = {}
    for section in DOC.read_text().split("\n## ")[1:]:
        name = section.split(None, 1)[0]
        m = re.search(r"```json\n(.*?)```", section, flags=re.S)
        if m:
            out[name] = m.group(1)
    return out


def _records(text: str) -> list:
    decoder, records, i = json.JSONDecoder(), [], 0
    while i < len(text):
        if text[i].isspace():
            i += 1
            continue
        record, i = decoder.raw_decode(text, i)
        records.append(record)
    return records


def test_every_json_format_has_an_example():
    assert sorted(_examples()) == ["canonical", "openai", "otlp", "sharegpt"]


@pytest.mark.parametrize("fmt", ["canonical", "openai", "otlp", "sharegpt"])
def test_example_ingests_as_documented(tmp_path, fmt):
    # the doc spreads a record over several lines for reading; a log holds one JSON record per line
    text = "".join(json.dumps(r) + "\n" for r in _records(_examples()[fmt]))
    path = tmp_path / f"example.{'json' if fmt == 'otlp' else 'jsonl'}"
    path.write_text(text)
    home = tmp_path / "home"
    res = CliRunner().invoke(cli, ["--home", str(home), "ingest", str(path), "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output)
    assert summary["files"][0]["format"] == fmt
    assert summary["ingested"] >= 1 and summary["quarantined"] == 0, summary
    res = CliRunner().invoke(cli, ["--home", str(home), "sql", "SELECT DISTINCT model FROM turns", "--format", "json"])
    assert res.exit_code == 0, res.output
    for row in json.loads(res.output):
        # the canonical example once gave both a name@version model and metadata.model_version, stored as
        # 'assistant@2026-10@2026-10-28'
        assert row["model"].count("@") <= 1, row
