"""`monitor classify` and `monitor eval`: the classifiers on a JSONL file, outside the lake."""
from __future__ import annotations

import json
from pathlib import Path

import click

from monitor.classify import BACKENDS
from monitor.errors import ClassifierError, MonitorError


def _classifiers(obj, backend: str | None):
    from monitor.classify import configured_options, load_classifiers
    from monitor.config import load_config
    from monitor.home import DEFAULT_HOME, is_home, resolve_root

    # Read the config only when a home is named or exists (a named one that is not a home is an error):
    # classifying a file never creates a home. --config alone is read without any home.
    cfg = None
    if obj.home_arg or is_home(resolve_root(DEFAULT_HOME)):
        cfg = obj.home.config.classifiers
    elif obj.config_arg:
        cfg = load_config(Path.cwd(), Path(obj.config_arg).resolve()).classifiers
    name = backend or (cfg.backend if cfg else "lexical")
    return load_classifiers(backend=name, options=configured_options(cfg, name) if cfg else None)


@click.command("classify")
@click.option("--input", "input_path", required=True, type=click.Path(dir_okay=False),
              help="JSONL with `prompt` and/or `response` per row.")
@click.option("--output", "output_path", required=True, type=click.Path(dir_okay=False),
              help="JSONL to write: every input field plus refusal, refusal_score, prompt_harm, prompt_harm_score.")
@click.option("--backend", type=click.Choice(list(BACKENDS)), default=None,
              help="Classifier backend (default: [classifiers] backend in the config, else lexical).")
@click.option("--batch-size", default=2048, show_default=True, type=click.IntRange(1, 1_000_000))
@click.pass_obj
def classify_cmd(obj, input_path, output_path, backend, batch_size):
    """Classify each reply (refusal) and each prompt (harm) of a JSONL file, streaming.

    \b
    Example:
      monitor classify --input pairs.jsonl --output scored.jsonl
    """
    from monitor.classify.stream import classify_file

    src, dst = Path(input_path), Path(output_path)
    if not src.exists():
        raise MonitorError(f"input file {src} does not exist", "check the --input path")
    if src.resolve() == dst.resolve():
        raise MonitorError(f"--output {dst} is the input file", "write to another file")
    clf = _classifiers(obj, backend)
    summary = classify_file(src, dst, clf, batch_size=batch_size) or {}
    rows = summary.get("rows", summary.get("written", "?"))
    guessed = summary.pop("not_english", None) or {}
    extra = ", ".join(f"{k} {v:,}" if isinstance(v, int) else f"{k} {v}" for k, v in summary.items()
                      if k not in ("rows", "written"))
    click.echo(f"classified {rows:,} rows from {src} into {dst}" if isinstance(rows, int)
               else f"classified {src} into {dst}", err=True)
    if extra:
        click.echo(f"  {extra}", err=True)
    if guessed.get("replies") or guessed.get("prompts"):
        click.echo(f"  warning: {guessed.get('replies', 0):,} replies and {guessed.get('prompts', 0):,} prompts look like "
                   "another language; the English-only classifiers guessed at them (the score job leaves such texts "
                   "unscored: docs/refusal.md, 'Texts the classifiers cannot read')", err=True)


def _read_jsonl(path: Path) -> list[tuple[int, dict]]:
    """The (line number, object) pairs of a labelled JSONL file."""
    from monitor.classify.stream import iter_jsonl

    return list(iter_jsonl(path))


def _check_labels(path, numbered: list[tuple[int, dict]]) -> None:
    """A label that is present but not one of the allowed values is an error, not a silently skipped row."""
    from monitor.classify.evaluate import HARM_ORDER, REFUSAL_ORDER

    for lineno, row in numbered:
        for field, allowed in (("refusal_label", REFUSAL_ORDER), ("prompt_label", HARM_ORDER)):
            value = row.get(field)
            if value is not None and value not in allowed:
                raise ClassifierError(f"{path}:{lineno}: {field} {value!r} is not one of {'|'.join(allowed)}",
                                      f"fix the label, or drop the field (or set it to null) to leave the row unlabelled")


@click.command("eval")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--backend", type=click.Choice(list(BACKENDS)), default=None,
              help="Classifier backend (default: [classifiers] backend in the config, else lexical).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_obj
def eval_cmd(obj, path, backend, as_json):
    """Evaluate the classifiers on labelled rows (`refusal_label`, `prompt_label`, optional `model`).

    Prints precision, recall, F1 and the confusion matrix of each classifier, overall and per model. Labels must be
    compliance|partial_refusal|full_refusal and benign|harmful. Texts the bundled classifiers were trained on
    (e.g. all of xstest_dev.jsonl) give in-sample figures, and the report says so; docs/refusal.md has the
    cross-validated ones.

    \b
    Example:
      monitor eval labelled_replies.jsonl --json
    """
    from monitor.classify.evaluate import evaluate_rows, format_report
    from monitor.classify.insample import notice

    numbered = _read_jsonl(Path(path))
    if not numbered:
        raise MonitorError(f"{path} has no rows", "write one JSON object per line")
    _check_labels(path, numbered)
    rows = [r for _, r in numbered]
    if not any("refusal_label" in r or "prompt_label" in r for r in rows):
        raise ClassifierError(f"{path}: no row has `refusal_label` or `prompt_label`",
                              "label rows as in ../shared/data/refusal/xstest_dev.jsonl")
    clf = _classifiers(obj, backend)
    report = evaluate_rows(rows, clf)
    report["in_sample"] = _in_sample(rows, clf)
    note = notice(report["in_sample"])
    if as_json:
        click.echo(json.dumps(report, indent=2, default=float))
    else:
        click.echo(format_report(report))
    if note:
        click.secho(note, fg="yellow", err=True)


def _in_sample(rows: list[dict], clf) -> dict:
    """How many evaluated replies and prompts the classifiers were trained on (the rows evaluate_rows scores)."""
    from monitor.classify.base import is_text
    from monitor.classify.evaluate import HARM_ORDER, REFUSAL_ORDER
    from monitor.classify.insample import overlap

    replies = [r["response"] for r in rows if r.get("refusal_label") in REFUSAL_ORDER and is_text(r.get("response"))]
    prompts = [r["prompt"] for r in rows if r.get("prompt_label") in HARM_ORDER and is_text(r.get("prompt"))]
    return overlap(replies, prompts, clf.refusal_version, clf.harm_version)


commands = [classify_cmd, eval_cmd]
