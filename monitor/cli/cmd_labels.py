"""`monitor labels`: bring reviewer labels made elsewhere in, take every label out, and check reviewer agreement."""
from __future__ import annotations

import json
import sys

import click

SHOWN = 20  # import errors printed


@click.group("labels")
def labels_group():
    """Import, export and check reviewer labels (the dashboard's review page writes the same table).

    \b
    Examples:
      monitor labels import vendor_batch.jsonl --by jane --sample random
      monitor labels export --by jane --output labels.parquet
      monitor labels agreement
    """


@labels_group.command("import")
@click.argument("file", type=click.Path(dir_okay=False, exists=True))
@click.option("--by", "actor", required=True, help="Who imports (recorded in the audit log).")
@click.option("--reviewer", help="Reviewer of rows without a `reviewer` column (default: --by).")
@click.option("--sample", type=click.Choice(["random", "targeted"]),
              help="How the labelled turns were chosen, for rows without a `sample` column: `random` (a random "
                   "sample of traffic; measures the classifiers' errors) or `targeted` (picked for a reason: "
                   "kept out of the error rates).")
@click.option("--dry-run", is_flag=True, help="Check the file and count, store nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the counts as JSON.")
@click.pass_obj
def l_import(obj, file, actor, reviewer, sample, dry_run, as_json):
    """Import labels from a JSONL, JSON (one array), CSV or Parquet file: all rows or, on any error, none.

    Each row: `turn_id`, optional `reviewer` and `sample`, and any of refusal_label (full_refusal,
    partial_refusal, compliance), prompt_label (harmful, benign), refusal_correct, over_refusal,
    harmful_compliance (yes/no), value_concern, note. `monitor labels export` output imports as is; its
    `queue_reason` (the review queue's reason for the turn) decides over `sample` and --sample.

    \b
    Examples:
      monitor labels import batch.csv --by jane --sample random
      monitor labels import export.jsonl --by jane --dry-run --json
    """
    from monitor.review_import import LabelImportError, import_labels

    try:
        out = import_labels(obj.home, file, actor, reviewer=reviewer, sample=sample, dry_run=dry_run)
    except LabelImportError as e:
        # Every error, not only the first: a file is fixed in one pass.
        click.secho(f"Error: {e.message}", fg="red", err=True)
        for line in e.errors[1:SHOWN]:
            click.echo(f"  {line}", err=True)
        if e.total > SHOWN:
            click.echo(f"  ... {e.total - SHOWN:,} more", err=True)
        click.echo(f"  Try: {e.hint}", err=True)
        sys.exit(1)
    if as_json:
        click.echo(json.dumps(out.as_dict(), indent=2))
        return
    verb = "would import" if dry_run else "imported"
    click.echo(f"{verb} {out.rows:,} label rows from {file}: {out.added:,} added, {out.updated:,} updated, "
               f"{out.unchanged:,} unchanged, {out.repeated:,} repeated in the file")


@labels_group.command("export")
@click.option("--by", "actor", required=True, help="Who exports (recorded in the audit log).")
@click.option("--output", "-o", type=click.Path(dir_okay=False), default="-", show_default=True,
              help="File to write (.jsonl or .parquet); '-' writes JSONL to stdout.")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "parquet"]),
              help="Output format (default: from the file name, else jsonl).")
@click.pass_obj
def l_export(obj, actor, output, fmt):
    """Every label with its turn's text and the classifiers' latest output, for training or an audit.

    \b
    Examples:
      monitor labels export --by jane > labels.jsonl
      monitor labels export --by jane -o labels.parquet
    """
    from monitor.review import ReviewError, export_labels

    fmt = fmt or ("parquet" if output.lower().endswith(".parquet") else "jsonl")
    if output == "-" and fmt == "parquet":
        raise ReviewError("Parquet is not written to a terminal", "pass --output FILE.parquet")
    data = export_labels(obj.home, fmt=fmt, actor=actor)
    if output == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return
    from pathlib import Path

    try:
        Path(output).write_bytes(data)
    except OSError as e:
        raise ReviewError(f"cannot write {output}: {e.strerror or e}") from e
    if fmt == "jsonl":
        rows = data.count(b"\n")
    else:
        import io

        import pyarrow.parquet as pq

        rows = pq.read_metadata(io.BytesIO(data)).num_rows
    click.echo(f"wrote {rows:,} labels to {output}", err=True)


@labels_group.command("agreement")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
@click.pass_obj
def l_agreement(obj, as_json):
    """Agreement between reviewers per question, on turns two or more reviewers labelled.

    \b
    Example:
      monitor labels agreement --json
    """
    from monitor.review import agreement, labels

    rows = agreement(labels(obj.home))
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return

    def f(v):
        return "-" if v is None else f"{v:.2f}"

    click.echo(f"{'question':<20} {'items':>6} {'reviewers':>9} {'agree':>6} {'fleiss':>7} {'cohen':>6}")
    for r in rows:
        click.echo(f"{r['field']:<20} {r['items']:>6,} {r['reviewers']:>9} {f(r['percent_agreement']):>6} "
                   f"{f(r['fleiss_kappa']):>7} {f(r['cohen_kappa_mean']):>6}")


commands = [labels_group]
