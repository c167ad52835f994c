"""monitor.incremental.LabelledFiles: a result about reviewer-labelled turns still holds while its identity is the
same, the files committed up to its saved version hold the rows they held, and no file committed since holds a row
of a labelled turn; each trigger below is checked on a real lake, and so is what the check reads."""
from __future__ import annotations

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from monitor.home import Home
from monitor.incremental import LabelledFiles

TABLES = ("turns", "scores", "segments")
DAY, OTHER = "2026-11-10", "2026-11-12"


def add(home, table: str, turn_ids: list[str], date: str = DAY) -> None:
    cols = {"turn_id": turn_ids, "date": [date] * len(turn_ids)}
    if table == "segments":
        cols.update(attribute=["language"] * len(turn_ids), value=["hi"] * len(turn_ids))
    home.lake.append(table, pa.table(cols))


def files(home, dates=(DAY,)) -> LabelledFiles:
    return LabelledFiles.of(home.lake.root, home.lake.manifest(), TABLES, set(dates))


@pytest.fixture
def home(tmp_path):
    home = Home.open(tmp_path / "h")
    for table in TABLES:
        add(home, table, ["a", "b", "c"])
        add(home, table, ["x"], OTHER)  # another date: outside the files of DAY
    return home


class Spy:
    """A DuckDB connection that records the files each query reads."""

    def __init__(self):
        self.con = duckdb.connect(":memory:")
        self.reads: list[list[str]] = []

    def execute(self, sql, params=None):
        self.reads.append(sorted(p for k, v in (params or {}).items() if k != "ids" for p in v))
        return self.con.execute(sql, params)


@pytest.fixture
def con():
    spy = Spy()
    yield spy
    spy.con.close()


def test_files_are_restricted_to_the_dates_and_counted_per_table(home):
    f = files(home)
    assert f.rows() == {"turns": 3, "scores": 3, "segments": 3}
    assert files(home, (DAY, OTHER)).rows() == {"turns": 4, "scores": 4, "segments": 4}
    assert LabelledFiles.of(home.lake.root, home.lake.manifest(), TABLES).rows() == files(home, (DAY, OTHER)).rows()
    saved = f.state("id")
    assert saved == {"identity": "id", "v": home.lake.manifest()["version"], "rows": f.rows()}
    add(home, "scores", ["d"])
    assert files(home).rows(saved["v"]) == saved["rows"]  # the older files only
    assert files(home).rows() == {"turns": 3, "scores": 4, "segments": 3}


def test_nothing_changed_reads_nothing(home, con):
    saved = files(home).state("id")
    assert files(home).unchanged(con, saved, "id", ["a"])
    assert con.reads == []


def test_an_identity_change_or_no_saved_state_is_a_change(home, con):
    saved = files(home).state("id")
    assert not files(home).unchanged(con, saved, "other", ["a"])
    assert not files(home).unchanged(con, None, "id", ["a"])
    assert not files(home).unchanged(con, {}, "id", ["a"])
    assert not files(home).unchanged(con, {"identity": "id", "rows": saved["rows"]}, "id", ["a"])  # no version
    assert con.reads == []


def test_old_files_that_no_longer_hold_their_rows_are_a_change(home, con):
    saved = files(home).state("id")
    # A deletion of an unlabelled turn rewrites an old file, keeping its version: no new file, fewer rows.
    with home.lake.transaction() as tx:
        assert tx.rewrite("segments", lambda t: pc.not_equal(t["turn_id"], "c"), columns=["turn_id"])[1] == 1
    assert files(home).committed_after(saved["v"]) == {t: [] for t in TABLES}
    assert not files(home).unchanged(con, saved, "id", ["a"])


def test_a_compaction_merging_old_and_new_rows_is_a_change(home, con):
    saved = files(home).state("id")
    add(home, "turns", ["d", "e", "f"])  # unlabelled turns: alone they change nothing
    assert files(home).unchanged(con, saved, "id", ["a"])
    assert home.lake.compact("turns", min_files=2) > 0  # the merged file carries the newest version
    assert not files(home).unchanged(con, saved, "id", ["a"])


@pytest.mark.parametrize("table", TABLES)
def test_a_new_file_with_a_row_of_a_labelled_turn_is_a_change(home, table, con):
    saved = files(home).state("id")
    add(home, table, ["d", "b"])  # b is labelled: a late turn, a re-score or a late segment
    add(home, "turns", ["e"])
    f = files(home)
    assert not f.unchanged(con, saved, "id", ["b", "zz"])
    assert f.unchanged(con, saved, "id", ["a", "zz"])  # a is in the old files only
    new = {str(p) for ps in f.committed_after(saved["v"]).values() for p in ps}
    assert len(new) == 2 and con.reads == [sorted(new)] * 2  # only the new files, one query


def test_new_files_of_another_date_are_not_read(home, con):
    saved = files(home).state("id")
    add(home, "scores", ["a"], OTHER)  # a labelled turn's id in a file of a date the result does not read
    assert files(home).unchanged(con, saved, "id", ["a"])
    assert con.reads == []


def test_new_files_without_labelled_turns_advance_the_version(home, con):
    saved = files(home).state("id")
    for table in TABLES:
        add(home, table, ["d", "e"])
    f = files(home)
    assert f.unchanged(con, saved, "id", ["a", "b"])
    assert len(con.reads) == 1 and len(con.reads[0]) == 3  # one query over each table's new file
    advanced = f.state("id")
    assert advanced["v"] > saved["v"] and advanced["rows"] == {t: 5 for t in TABLES}
    # The next run reads only the files committed after the advanced version: none here, then just the newest.
    con.reads.clear()
    assert files(home).unchanged(con, advanced, "id", ["a", "b"])
    assert con.reads == []
    add(home, "scores", ["b"])
    assert not files(home).unchanged(con, advanced, "id", ["a", "b"])
    assert len(con.reads) == 1 and len(con.reads[0]) == 1


def test_no_labelled_turn_means_no_new_file_can_matter(home, con):
    saved = files(home).state("id")
    for table in TABLES:
        add(home, table, ["a", "d"])
    assert files(home).unchanged(con, saved, "id", [])
    assert con.reads == []  # nothing to look for: no file read
    # The older files are still checked.
    with home.lake.transaction() as tx:
        tx.rewrite("turns", lambda t: pc.not_equal(t["turn_id"], "c"), columns=["turn_id"])
    assert not files(home).unchanged(con, saved, "id", [])

