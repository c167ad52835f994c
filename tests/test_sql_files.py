"""Every metric SQL file: a header naming its parameters, a registry entry, and a clean transpile to Spark SQL."""
import pytest
import sqlglot

from monitor.metrics import METRICS, get
from monitor.resources import load_sql, sql_files, sql_root

METRIC_FILES = sql_files("metrics")
# SQL of the refusal jobs and the metrics listing: DuckDB only, but kept portable all the same.
OTHER_FILES = [load_sql(f"jobs/{p.name}") for p in sorted((sql_root() / "jobs").glob("*.sql"))
               if p.name.startswith(("refusal_", "score_"))] + [load_sql("queries/metrics_list.sql")]


def test_every_metric_file_has_a_registry_entry_and_every_entry_a_file():
    registered = {m.sql_file for m in METRICS}
    on_disk = {f"metrics/{f.path.name}" for f in METRIC_FILES}
    assert on_disk, "no files under sql/metrics"
    assert on_disk - registered == set(), "sql/metrics files without a Metric entry"
    assert registered - on_disk == set(), "Metric entries whose sql_file does not exist"


def test_registry_names_and_help():
    names = [m.name for m in METRICS]
    assert len(names) == len(set(names))
    for stem in ("refusal_rate", "over_refusal_rate", "under_refusal_rate"):
        assert stem in names
    for m in METRICS:
        assert len(m.help) > 40 and m.help[0].isupper(), m.name
    from monitor.jobs.refusal_metrics import metric_names

    assert set(metric_names()) <= set(names)
    with pytest.raises(Exception, match="did you mean 'over_refusal_rate'"):
        get("over_refusal_rat")


@pytest.mark.parametrize("f", METRIC_FILES + OTHER_FILES, ids=lambda f: f.path.name)
def test_header_documents_every_parameter(f):
    assert f.header, f"{f.path} has no header comment"
    assert "Output columns" in f.header or "Columns" in f.header, f.path
    for p in f.params:
        assert f"${p}" in f.header, f"{f.path}: parameter ${p} not described in the header"


@pytest.mark.parametrize("f", METRIC_FILES + OTHER_FILES, ids=lambda f: f.path.name)
def test_transpiles_to_spark(f):
    out = sqlglot.transpile(f.sql, read="duckdb", write="spark", unsupported_level=sqlglot.ErrorLevel.RAISE)
    assert len(out) == 1 and out[0].strip()
    # Parameters survive as Spark named markers (:name), never as formatted values.
    for p in f.params:
        assert f":{p}" in out[0], f"{f.path}: ${p} lost in the Spark SQL"
