"""Every example in every command's --help parses; the `monitor sql` examples also run on a small home."""
from __future__ import annotations

import shlex

import click
import pytest
from click.testing import CliRunner

from monitor.cli import cli
from monitor.home import Home
from test_sqlguard import _turns  # tests/ is on sys.path (rootdir-relative imports)


def _commands(group: click.Group = cli, path: tuple[str, ...] = ()):
    yield path, group
    for name, cmd in getattr(group, "commands", {}).items():
        yield from _commands(cmd, path + (name,))


def _examples(cmd: click.Command) -> list[list[str]]:
    """The `monitor ...` lines of a command's help, as argument lists (comments, pipes and redirections dropped)."""
    text = (cmd.help or "").replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("MONITOR_HOME="):
            line = line.split(" ", 1)[1]
        if not line.startswith("monitor "):
            continue
        args = shlex.split(line.replace("\\$", "$"), comments=True)[1:]  # "\$m" is "$m" to a shell
        for stop in ("|", ">"):
            if stop in args:
                args = args[:args.index(stop)]
        out.append(args)
    return out


EXAMPLES = [(path, args) for path, cmd in _commands() for args in _examples(cmd)]


def test_examples_were_found():
    paths = {p for p, _ in EXAMPLES}
    assert ("sql",) in paths and ("metrics",) in paths and () in paths and len(EXAMPLES) > 25


@pytest.mark.parametrize("path, args", EXAMPLES, ids=[" ".join(a)[:60] for _, a in EXAMPLES])
def test_example_parses(path, args):
    """The example names an existing command and its options and arguments are accepted by click."""
    opts = []
    while args and args[0].startswith("--") and args[0] in ("--home", "--config"):
        opts, args = opts + args[:2], args[2:]
    cmd, name, rest = cli, "monitor", list(args)
    while isinstance(cmd, click.Group) and rest and rest[0] in cmd.commands:
        name, cmd, rest = rest[0], cmd.commands[rest[0]], rest[1:]
    assert isinstance(cmd, click.Command)
    if isinstance(cmd, click.Group):
        assert not rest, f"unknown sub-command in {args}"
        return
    try:
        cmd.make_context(name, rest)
    except click.BadParameter as e:  # example paths (logs/, chats.csv) need not exist here
        assert "does not exist" in e.format_message(), e.format_message()


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Home:
    h = Home.open(tmp_path_factory.mktemp("help_examples") / "home")
    import datetime as dt

    import pyarrow as pa

    from monitor.schema import TABLES

    turns = _turns(20)
    h.lake.append("turns", turns)
    ids = turns.column("turn_id").to_pylist()
    labels = ["compliance", "full_refusal", "partial_refusal", "compliance"] * 5
    scores = {"turn_id": ids, "refusal": labels, "refusal_score": [0.5] * 20, "prompt_harm": ["benign"] * 20,
              "prompt_harm_score": [0.1] * 20, "prompt_harm_category": [None] * 20, "refusal_version": ["v"] * 20,
              "harm_version": ["v"] * 20, "backend": ["lexical"] * 20,
              "scored_at": [dt.datetime(2026, 11, 2)] * 20, "date": turns.column("date").to_pylist()}
    h.lake.append("scores", pa.table(scores, schema=TABLES["scores"].schema))
    h.state.migrate()
    return h


SQL_EXAMPLES = [args for path, args in EXAMPLES if args[:1] == ["sql"]]


@pytest.mark.parametrize("args", SQL_EXAMPLES, ids=[" ".join(a)[:60] for a in SQL_EXAMPLES])
def test_sql_example_runs(home, args):
    r = CliRunner().invoke(cli, ["--home", str(home.root), *args])
    assert r.exit_code == 0, r.output


def test_sql_example_literals_are_real_values():
    """A query on a value that never occurs runs fine and answers nothing, so check the values themselves."""
    import re

    from monitor.classify import REFUSAL_LABELS

    statuses = {"firing", "acknowledged", "silenced", "resolved"}
    text = " ".join(" ".join(a) for a in SQL_EXAMPLES)
    for value in re.findall(r"status\s*(?:=|<>|!=)\s*'(\w+)'", text):
        assert value in statuses, f"alert status {value!r} does not exist"
    for value in re.findall(r"refusal\s*(?:=|<>|!=)\s*'(\w+)'", text):
        assert value in REFUSAL_LABELS, f"refusal label {value!r} does not exist"
