"""`monitor jobs run NAME...`: the named jobs and what they depend on, nothing more; `after` only orders."""
from click.testing import CliRunner

from monitor.cli import cli
from monitor.jobs import discover, run_all


def test_notify_alone_delivers_without_running_the_metric_chain(home):
    assert discover()["notify"].after  # ordered after alerts and pipeline_health when they run too
    assert [r.job for r in run_all(home, only=["notify"])] == ["notify"]


def test_the_health_cron_line_runs_the_check_then_delivery_only(home):
    results = run_all(home, only=["notify", "pipeline_health"])
    assert [r.job for r in results] == ["pipeline_health", "notify"] and all(r.status == "ok" for r in results)
    r = CliRunner().invoke(cli, ["--home", str(home.root), "jobs", "run", "pipeline_health", "notify"])
    assert r.exit_code == 0, r.output
    assert "score" not in r.output and "refusal_metrics" not in r.output


def test_dependencies_are_still_pulled_in(home):
    names = [r.job for r in run_all(home, only=["refusal_metrics"])]
    assert names[-1] == "refusal_metrics" and {"score", "languages"} <= set(names)
