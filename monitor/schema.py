"""Arrow schemas of the lake tables: the interface between pipeline stages.

Every table lives under ``<home>/lake/<table>/`` as hive-partitioned Parquet files listed in the lake manifest.
Timestamps are naive UTC microseconds (Spark reads them as TIMESTAMP_NTZ). Free-form objects are JSON text.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import pyarrow as pa

TS = pa.timestamp("us")


@dataclass(frozen=True)
class Table:
    name: str
    schema: pa.Schema
    partition: tuple[str, ...]
    help: str
    # Compaction writes merged files sorted by these columns, in row groups of `row_group_rows`, so readers skip
    # the row groups outside a filter on them by the Parquet min/max statistics (partitions alone cannot).
    sort_by: tuple[str, ...] = ()
    row_group_rows: int = 1024 * 1024

    @property
    def stored_schema(self) -> pa.Schema:
        """The columns a Parquet file of this table holds: the schema without the partition columns."""
        return pa.schema([f for f in self.schema if f.name not in self.partition])

    @property
    def fingerprint(self) -> str:
        """Short hash of the stored columns' names and types, kept as `s` in the lake manifest's file entries."""
        return schema_fingerprint(self.stored_schema)


def schema_fingerprint(schema: pa.Schema) -> str:
    """Short hash of a Parquet file's column names and types, in order."""
    text = ";".join(f"{f.name}:{f.type}" for f in schema)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


TURNS = Table(
    "turns",
    pa.schema(
        [
            ("turn_id", pa.string()),  # sha256(source key): stable id of (conversation_id, turn_index)
            ("content_hash", pa.string()),  # sha256 of the normalised record content: catches re-sent records
            ("conversation_id", pa.string()),
            ("turn_index", pa.int32()),  # 0-based index of the assistant message in the conversation
            ("ts", TS),
            ("model", pa.string()),
            ("model_version", pa.string()),
            ("deployment", pa.string()),
            ("user_id", pa.string()),
            ("user_attrs", pa.string()),  # JSON object of user.* segment attributes (ids excluded)
            ("system_prompt", pa.string()),
            ("user_message", pa.string()),
            ("assistant_message", pa.string()),
            ("feedback", pa.string()),  # up | down | null
            ("feedback_score", pa.float64()),
            ("redactions", pa.int32()),  # number of PII spans replaced by placeholders in this turn
            ("redaction_counts", pa.string()),  # JSON {"email": 1, "phone": 2}
            ("extra", pa.string()),  # JSON of the record's fields that have no column
            ("source", pa.string()),  # production | probe | demo | ...
            ("source_format", pa.string()),
            ("source_file", pa.string()),
            ("source_line", pa.int64()),
            ("batch_id", pa.string()),
            ("ingested_at", TS),
            ("date", pa.string()),  # partition key: event date YYYY-MM-DD (UTC)
        ]
    ),
    ("date",),
    "One row per assistant reply with the user message it answers.",
)

SEGMENTS = Table(
    "segments",
    pa.schema(
        [
            ("turn_id", pa.string()),
            ("attribute", pa.string()),  # e.g. language, region, age_band, detected_language
            ("value", pa.string()),
            ("date", pa.string()),
        ]
    ),
    ("date",),
    "Segment attributes of each turn in long form (user.* keys and derived ones).",
)

QUARANTINE = Table(
    "quarantine",
    pa.schema(
        [
            ("quarantine_id", pa.string()),
            ("source_file", pa.string()),
            ("source_line", pa.int64()),  # line (JSONL), row (CSV/Parquet) or span index (OTLP), 1-based
            ("source_format", pa.string()),
            ("field", pa.string()),  # the offending field, when one is to blame
            ("reason", pa.string()),
            ("raw", pa.string()),  # the raw record text (invalid UTF-8 decoded with backslash escapes)
            ("batch_id", pa.string()),
            ("quarantined_at", TS),
            ("date", pa.string()),  # partition key: quarantine date
        ]
    ),
    ("date",),
    "Input records that could not be ingested, with their raw text and a reason.",
)

SCORES = Table(
    "scores",
    pa.schema(
        [
            ("turn_id", pa.string()),
            ("refusal", pa.string()),  # full_refusal | partial_refusal | compliance | null (unscored)
            ("refusal_score", pa.float64()),
            ("prompt_harm", pa.string()),  # harmful | benign | null
            ("prompt_harm_score", pa.float64()),
            ("prompt_harm_category", pa.string()),
            ("refusal_version", pa.string()),
            ("harm_version", pa.string()),
            ("backend", pa.string()),
            ("scored_at", TS),
            ("date", pa.string()),
        ]
    ),
    ("date",),
    "Classifier outputs per turn; several classifier versions may coexist (see view latest_scores).",
)

METRICS = Table(
    "metrics_log",
    pa.schema(
        [
            ("metric", pa.string()),  # e.g. over_refusal_rate, value_drift, over_refusal_disparity
            ("granularity", pa.string()),  # day | hour
            ("window_start", TS),
            ("window_end", TS),
            ("model", pa.string()),  # null = all models
            ("deployment", pa.string()),  # null = all deployments
            ("segment", pa.string()),  # JSON object attribute -> value, "{}" for all traffic
            ("value", pa.float64()),
            ("ci_low", pa.float64()),
            ("ci_high", pa.float64()),
            ("n", pa.int64()),
            ("numerator", pa.float64()),
            ("corrected", pa.float64()),
            ("corrected_ci_low", pa.float64()),
            ("corrected_ci_high", pa.float64()),
            ("small_sample", pa.bool_()),
            ("details", pa.string()),  # JSON: method, statistic, threshold, reference, p_value, ...
            ("job", pa.string()),
            ("run_id", pa.string()),
            ("computed_at", TS),
            ("family", pa.string()),  # partition key: refusal | values | disparity | ...
        ]
    ),
    ("family",),
    "Every metric row ever computed; view `metrics` keeps the latest per (metric, window, model, segment).",
    sort_by=("metric", "window_start"),  # a dashboard page or alert reads a few metrics and windows
    row_group_rows=100_000,
)

TABLES: dict[str, Table] = {t.name: t for t in (TURNS, SEGMENTS, QUARANTINE, SCORES, METRICS)}


def register_table(table: Table) -> Table:
    """Add a lake table (used by modules that own their own table, e.g. value scores)."""
    TABLES[table.name] = table
    return table


def empty(table: Table) -> pa.Table:
    return table.schema.empty_table()


# -- value profiles (monitor/jobs/values.py; readers in monitor/values/store.py) ---------------------------------
VALUE_SCORES = register_table(Table(
    "value_scores",
    pa.schema(
        [
            ("turn_id", pa.string()),
            ("dimension", pa.string()),  # built-in or plugin dimension name
            ("family", pa.string()),  # moral | normative | cultural | legal
            ("score", pa.float64()),  # weighted lexicon matches per 100 tokens (refusal: classifier probability)
            ("scorer_version", pa.string()),
            ("scored_at", TS),
            ("date", pa.string()),
        ]
    ),
    ("date",),
    "Value score of each scored reply on each dimension (long form, zeros included; unscored replies absent).",
))

VALUE_TURNS = register_table(Table(
    "value_turns",
    pa.schema(
        [
            ("turn_id", pa.string()),
            ("scored", pa.bool_()),  # false = the lexicons cannot score this reply (see reason)
            ("reason", pa.string()),  # empty | too_short | non_english | null when scored
            ("n_tokens", pa.int32()),
            ("topic", pa.string()),  # topic of the user message (monitor/values/topics.py)
            ("topic_terms", pa.string()),  # JSON list of the taxonomy terms that decided the topic
            ("scorer_version", pa.string()),
            ("scored_at", TS),
            ("date", pa.string()),
        ]
    ),
    ("date",),
    "One row per turn processed by the values job: scored or not (coverage), token count and prompt topic.",
))

VALUE_EVIDENCE = register_table(Table(
    "value_evidence",
    pa.schema(
        [
            ("turn_id", pa.string()),
            ("dimension", pa.string()),
            ("term", pa.string()),  # the lexicon entry that matched (e.g. coerc*)
            ("span_start", pa.int32()),  # assistant_message[span_start:span_end] is the matched text
            ("span_end", pa.int32()),
            ("scorer_version", pa.string()),
            ("date", pa.string()),
        ]
    ),
    ("date",),
    "Matched lexicon terms and their character spans behind each non-zero value score (first 5 per dimension).",
))
