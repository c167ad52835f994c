"""Derived segment `detected_language`: an offline lingua detector over the user message of each new turn.

The detector is built from a restricted set of common languages (faster and, on short chat messages, more accurate
than all 75), with a minimum relative distance so that text it cannot tell apart comes out 'unknown' rather than a
guess. Messages shorter than MIN_CHARS letters are 'unknown' too: a detector's answer on "ok thanks" is noise.
Codes are ISO 639-1 ('en', 'hi', ...), the form a declared `user.language` usually takes. Messages of at least
LOW_ACCURACY_MIN_CHARS characters go through lingua's low-accuracy (trigram) mode: on 10,000 benchmark user messages
it agreed with the high-accuracy mode on 99.8% of those and the whole pass took 2.2 instead of 6.0 CPU-seconds.
"""
from __future__ import annotations

import datetime as dt
import logging
import multiprocessing
import os
from functools import lru_cache

import pyarrow as pa

from monitor.resources import load_sql

# The 20 languages most used on the web and in chat-assistant traffic; anything else comes out as the closest of
# these or 'unknown'. Extending the list costs speed and short-text accuracy.
LANGUAGES = ("en", "es", "fr", "de", "it", "pt", "nl", "ru", "zh", "ja", "ko", "ar", "hi", "tr", "pl", "vi", "id",
             "th", "sv", "uk")
MIN_CHARS = 12
MAX_CHARS = 600  # the opening of a message decides its language; long pastes only cost time
MIN_RELATIVE_DISTANCE = 0.1
LOW_ACCURACY_MIN_CHARS = 60
MIN_PARALLEL = 4_000  # new turns from which detection is shared between two forked processes
UNKNOWN = "unknown"
ATTRIBUTE = "detected_language"
WATERMARK_KEY = "disparity.language_watermark"
WORKER_TIMEOUT_S = 300.0  # a batch of 20,000 messages takes a few seconds; no answer by then means a dead process

log = logging.getLogger("monitor.disparity.language")


@lru_cache(maxsize=2)
def detector(low_accuracy: bool = False):
    """The shared lingua detector of a mode (built once per process; its models load lazily on first use)."""
    from lingua import IsoCode639_1, LanguageDetectorBuilder

    codes = [getattr(IsoCode639_1, c.upper()) for c in LANGUAGES]
    builder = LanguageDetectorBuilder.from_iso_codes_639_1(*codes).with_minimum_relative_distance(MIN_RELATIVE_DISTANCE)
    return (builder.with_low_accuracy_mode() if low_accuracy else builder).build()


def detect(text: str | None) -> str:
    """ISO 639-1 code of the text's language, or 'unknown' for short or ambiguous text."""
    if not text:
        return UNKNOWN
    snippet = text[:MAX_CHARS]
    if sum(ch.isalpha() for ch in snippet) < MIN_CHARS:
        return UNKNOWN
    lang = detector(len(snippet) >= LOW_ACCURACY_MIN_CHARS).detect_language_of(snippet)
    return lang.iso_code_639_1.name.lower() if lang is not None else UNKNOWN


def detect_new_turns(home, batch: int = 20_000) -> list[dt.datetime]:
    """Detect the language of new turns not yet detected, append it to `segments`; returns the turns' timestamps."""
    from monitor.db import scoped_connect
    from monitor.incremental import Delta

    delta = Delta.open(home, WATERMARK_KEY, ATTRIBUTE)
    dates = delta.dates("turns")
    if dates is None:
        return []
    con = scoped_connect(home, delta.manifest, dates)  # segments are read only in the new turns' dates
    try:
        delta.view(con, "turns")
        rows = con.execute(load_sql("disparity/undetected_turns.sql").sql,
                           {"date_min": dates[0], "date_max": dates[1]}).fetchall()
    finally:
        con.close()
    touched: list[dt.datetime] = []
    n_workers = (os.cpu_count() or 1) if len(rows) >= MIN_PARALLEL else 0
    pool = None
    if n_workers > 1:
        # Load both detectors' models here, once, so the forked workers inherit them instead of each loading them.
        detect("warm up the language models")
        detect("warm up the low-accuracy language models with a sentence of more than sixty characters")
        pool = multiprocessing.get_context("fork").Pool(n_workers)
    try:
        for start in range(0, len(rows), batch):
            chunk = rows[start:start + batch]
            texts = [r[3] for r in chunk]
            values = _detect_all(pool, texts, n_workers)
            _append(home, chunk, values)
            touched += [r[2] for r in chunk]
    finally:
        if pool is not None:
            pool.terminate()
    delta.save(WATERMARK_KEY, ATTRIBUTE)
    return touched


def _detect_all(pool, texts: list[str], n_workers: int) -> list[str]:
    """Each text's language, shared between the pool's processes when there is a pool. A process killed mid-batch
    (the OOM killer, a stray signal) never answers: after WORKER_TIMEOUT_S the batch is detected here instead of
    the job waiting for ever (and with it every job the worker schedules)."""
    if pool is None:
        return [detect(t) for t in texts]
    res = pool.map_async(detect, texts, chunksize=max(1, len(texts) // (4 * n_workers)))
    try:
        return res.get(timeout=WORKER_TIMEOUT_S)
    except multiprocessing.TimeoutError:
        log.warning("a language-detection process gave no answer in %.0f s (killed?); detecting its batch of %d "
                    "here", WORKER_TIMEOUT_S, len(texts))
        return [detect(t) for t in texts]


def _append(home, chunk: list[tuple], values: list[str]) -> None:
    table = pa.table({
        "turn_id": [r[0] for r in chunk],
        "attribute": [ATTRIBUTE] * len(chunk),
        "value": values,
        "date": [r[1] for r in chunk],
    })
    home.lake.append("segments", table)
