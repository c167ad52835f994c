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
    extra = ", ".join(f"{k} {v:,}" if isinstance(v, int) else f"{k} {v}" for k, v in summary.items()
                      if k not in ("rows", "written"))
    click.echo(f"classified {rows:,} rows from {src} into {dst}" if isinstance(rows, int)
               else f"classified {src} into {dst}", err=True)
    if extra:
        click.echo(f"  {extra}", err=True)


def _read_jsonl(path: Path) -> list[dict]:
    rows = []
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise MonitorError(f"{path}:{i}: not valid JSON ({e.msg})", "one JSON object per line") from None
            if not isinstance(row, dict):
                raise MonitorError(f"{path}:{i}: expected a JSON object, got {type(row).__name__}")
            rows.append(row)
    return rows


@click.command("eval")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--backend", type=click.Choice(list(BACKENDS)), default=None,
              help="Classifier backend (default: [classifiers] backend in the config, else lexical).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_obj
def eval_cmd(obj, path, backend, as_json):
    """Evaluate the classifiers on labelled rows (`refusal_label`, `prompt_label`, optional `model`).

    Prints precision, recall, F1 and the confusion matrix of each classifier, overall and per model.

    \b
    Example:
      monitor eval ../shared/data/refusal/xstest_dev.jsonl --json
    """
    from monitor.classify.evaluate import evaluate_rows, format_report

    rows = _read_jsonl(Path(path))
    if not rows:
        raise MonitorError(f"{path} has no rows")
    if not any("refusal_label" in r or "prompt_label" in r for r in rows):
        raise ClassifierError(f"{path}: no row has `refusal_label` or `prompt_label`",
                              "label rows as in ../shared/data/refusal/xstest_dev.jsonl")
    report = evaluate_rows(rows, _classifiers(obj, backend))
    if as_json:
        click.echo(json.dumps(report, indent=2, default=float))
    else:
        click.echo(format_report(report))


commands = [classify_cmd, eval_cmd]
