"""Classify a JSONL file row by row in bounded memory, keeping every input field and adding the labels."""
from __future__ import annotations

import json
import math
import os
from collections import Counter
from pathlib import Path

from monitor.classify.base import english_only_guesses, is_text


OUTPUT_FIELDS = ("refusal", "refusal_score", "prompt_harm", "prompt_harm_score", "prompt_harm_category")


def _num(x: float):
    """JSON has no NaN: an unscored row gets null."""
    return None if x is None or math.isnan(x) else round(float(x), 4)


def iter_jsonl(path: Path):
    """Yield ``(line number, object)`` for each non-blank line of a UTF-8 JSONL file; a ClassifierError naming the
    file, line and column (or field) for a line that is not UTF-8, not JSON, not an object, or whose `prompt` or
    `response` is neither text nor null."""
    from collectors import json_type
    from monitor.errors import ClassifierError

    try:
        fh = open(path, "rb")
    except OSError as e:
        raise ClassifierError(f"cannot read {path}: {e.strerror or e}", "check the path and its permissions") from e
    with fh:
        for lineno, raw in enumerate(fh, 1):
            try:
                line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
            except UnicodeDecodeError as e:
                skip = 3 if lineno == 1 and raw.startswith(b"\xef\xbb\xbf") else 0  # the BOM is not counted
                raise ClassifierError(
                    f"{path}:{lineno}: not valid UTF-8 (byte 0x{raw[e.start + skip]:02x} at column {e.start + 1})",
                    f"convert the file to UTF-8, e.g. iconv -f latin1 -t utf-8 {path} > fixed.jsonl") from None
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ClassifierError(f"{path}:{lineno}: not valid JSON ({e.msg} at column {e.colno})",
                                      hint="each line must be one JSON object with 'prompt' and/or 'response'") from e
            if not isinstance(row, dict):
                raise ClassifierError(f"{path}:{lineno}: expected a JSON object, got {json_type(row)}",
                                      hint='write rows like {"prompt": "...", "response": "..."}')
            for field in ("prompt", "response"):  # absent or null: nothing to score; anything else but text: an error
                if row.get(field) is not None and not isinstance(row[field], str):
                    raise ClassifierError(f"{path}:{lineno}: field {field!r} must be text, got {json_type(row[field])}",
                                          hint=f"write the {field} as a JSON string, or null when there is none")
            yield lineno, row


def _read_batches(path: Path, batch_size: int):
    batch: list[dict] = []
    for _, row in iter_jsonl(path):
        batch.append(row)
        if len(batch) >= batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


def _check_writable(dst: Path) -> None:
    from monitor.errors import ClassifierError

    folder = dst.parent
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise ClassifierError(f"cannot write {dst}: folder {what}", f"create {folder} first, or choose another --output")
    if dst.is_dir():
        raise ClassifierError(f"cannot write {dst}: it is a folder", "give a file name, e.g. --output scored.jsonl")


def classify_file(input_path, output_path, clf, batch_size: int = 2048, progress=None) -> dict:
    """Stream ``input_path`` (JSONL rows with ``prompt`` and/or ``response``) to ``output_path`` with labels added.

    Adds refusal, refusal_score, prompt_harm, prompt_harm_score, prompt_harm_category (null when the text is
    missing or empty). The output is written to a temporary file and moved into place at the end, so a reader never
    sees half a file. ``progress`` is an optional callable taking the running row count.
    """
    from monitor.errors import ClassifierError

    src, dst = Path(input_path), Path(output_path)
    if not src.exists():
        raise ClassifierError(f"input file {src} does not exist")
    if batch_size < 1:
        raise ClassifierError(f"batch_size must be >= 1, got {batch_size}")
    _check_writable(dst)
    tmp = dst.with_name(dst.name + f".tmp-{os.getpid()}")
    counts: Counter = Counter()
    info: Counter = Counter()
    try:
        try:
            out = open(tmp, "w", encoding="utf-8")
        except OSError as e:
            raise ClassifierError(f"cannot write {dst}: {e.strerror or e}",
                                  "check the folder's permissions, or choose another --output") from e
        with out:
            for batch in _read_batches(src, batch_size):
                responses = [r.get("response") for r in batch]
                prompts = [r.get("prompt") for r in batch]
                prompts_s = [p if isinstance(p, str) else None for p in prompts]
                ref_idx = [i for i, x in enumerate(responses) if is_text(x)]
                harm_idx = [i for i, x in enumerate(prompts) if is_text(x)]
                ref = clf.score_refusal([responses[i] for i in ref_idx], [prompts_s[i] for i in ref_idx]) if ref_idx else None
                harm = clf.score_harm([prompts[i] for i in harm_idx]) if harm_idx else None
                for row in batch:
                    for k in OUTPUT_FIELDS:
                        row[k] = None
                if ref is not None:
                    counts["replies_not_english"] += _guessed([responses[i] for i in ref_idx], ref, clf,
                                                            prompts=[prompts_s[i] for i in ref_idx])
                    for j, i in enumerate(ref_idx):
                        batch[i]["refusal"] = ref.labels[j]
                        batch[i]["refusal_score"] = _num(ref.scores[j])
                        counts[f"refusal:{ref.labels[j]}"] += 1
                    _merge(info, "refusal", ref.info)
                if harm is not None:
                    counts["prompts_not_english"] += _guessed([prompts[i] for i in harm_idx], harm, clf)
                    for j, i in enumerate(harm_idx):
                        batch[i]["prompt_harm"] = harm.labels[j]
                        batch[i]["prompt_harm_score"] = _num(harm.scores[j])
                        batch[i]["prompt_harm_category"] = harm.categories[j]
                        counts[f"harm:{harm.labels[j]}"] += 1
                    _merge(info, "harm", harm.info)
                for row in batch:
                    out.write(json.dumps(row, ensure_ascii=False) + "\n")
                counts["rows"] += len(batch)
                counts["refusal_scored"] += len(ref_idx)
                counts["harm_scored"] += len(harm_idx)
                counts["no_text"] += sum(1 for i in range(len(batch)) if not is_text(responses[i]) and not is_text(prompts[i]))
                if progress:
                    progress(counts["rows"])
        try:
            os.replace(tmp, dst)
        except OSError as e:
            raise ClassifierError(f"cannot write {dst}: {e.strerror or e}", "choose another --output") from e
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    result = {"rows": counts.pop("rows", 0), "refusal_scored": counts.pop("refusal_scored", 0),
              "harm_scored": counts.pop("harm_scored", 0), "no_text": counts.pop("no_text", 0),
              "not_english": {"replies": counts.pop("replies_not_english", 0),
                              "prompts": counts.pop("prompts_not_english", 0)},
              "labels": dict(sorted(counts.items())), "backend": clf.backend,
              "refusal_version": clf.refusal_version, "harm_version": clf.harm_version}
    if info:
        result["backend_info"] = dict(info)
    return result


def _merge(acc: Counter, prefix: str, info: dict) -> None:
    """Sum the numeric counters of a backend report (booleans such as budget_exhausted become counts of batches)."""
    for k, v in info.items():
        if isinstance(v, bool):
            acc[f"{prefix}_{k}_batches"] += int(v)
        elif isinstance(v, int) and k not in ("daily_budget", "budget_used_today"):
            acc[f"{prefix}_{k}"] += v


def _guessed(texts: list, result, clf, prompts: list | None = None) -> int:
    """How many of `texts` an English-only model labelled although they show another language (monitor/textlang.py);
    with `prompts`, `texts` are the replies to them, each judged with its prompt (reply_not_english)."""
    from monitor.textlang import not_english, reply_not_english

    if prompts is None:
        return len(english_only_guesses(texts, result, getattr(clf, "english_only", True), not_english))
    return len(english_only_guesses(list(zip(texts, prompts)), result, getattr(clf, "english_only", True),
                                    lambda rp: reply_not_english(*rp)))
