"""`monitor config check` finds a broken edit before the worker's next run; `monitor config show` hides secrets."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from monitor.alerts.rules import effective_rules
from monitor.cli import cli
from monitor.config import Config

GOOD = """
[metrics]
min_n = 50
[worker]
token = "s3cret-token"
[[notify.channels]]
name = "slack"
type = "webhook"
url = "https://hooks.example.com/services/T000/B000/XXXXSECRET?key=abc"
headers = { Authorization = "Bearer hunter2" }
[[notify.channels]]
name = "mail"
type = "email"
host = "smtp.example.com"
from = "monitor@example.com"
to = ["oncall@example.com"]
password_env = "AM_TEST_SMTP_PASSWORD_UNSET"
"""


def run(*args):
    r = CliRunner().invoke(cli, list(args))
    return r.exit_code, r.stdout, r.stderr


def test_check_passes_a_good_file_and_warns_about_unset_secrets(tmp_path, monkeypatch):
    monkeypatch.delenv("AM_TEST_SMTP_PASSWORD_UNSET", raising=False)
    home = tmp_path / "h"
    home.mkdir()
    (home / "monitor.toml").write_text(GOOD)
    code, out, err = run("--home", str(home), "config", "check")
    n_rules = len(effective_rules(Config()))
    assert code == 0, err
    assert out.strip() == f"OK: {home / 'monitor.toml'}: 3 key(s) set, {n_rules} alert rule(s), 2 notification channel(s)"
    assert "'notify.channels[1].password_env' names the environment variable AM_TEST_SMTP_PASSWORD_UNSET" in err
    code, out, _ = run("--home", str(home), "config", "check", "--json")
    doc = json.loads(out)
    assert (code, doc["ok"], doc["channels"], doc["keys_set"]) == (0, True, ["mail", "slack"], 3)
    monkeypatch.setenv("AM_TEST_SMTP_PASSWORD_UNSET", "x")
    assert json.loads(run("--home", str(home), "config", "check", "--json")[1])["warnings"] == []


@pytest.mark.parametrize("toml, message", [
    ("[metrics]\nmin_nn = 5\n", "unknown key 'metrics.min_nn'"),
    ("[metrics]\nmin_n = 0\n", "'metrics.min_n' must be positive"),
    ("[metrics\nmin_n = 5\n", "not valid TOML"),
    # read only by the alerts and notify jobs: found here, not at the worker's next run
    ('[[alerts.rules]]\nname = "x"\nmetric = "refusal_rate"\n', "'alerts.rules[0].kind' is required"),
    ('[[notify.channels]]\nname = "a"\ntype = "webhok"\nurl = "http://x"\n', "'notify.channels[0].type' must be"),
    ('[classifiers]\nbackend = "llm_judge"\nllm_judge = { model = "m" }\n', "'classifiers.llm_judge'"),
])
def test_check_names_the_first_problem_in_one_line(tmp_path, toml, message):
    f = tmp_path / "edit.toml"
    f.write_text(toml)
    code, out, err = run("--home", str(tmp_path / "h"), "--config", str(f), "config", "check")
    assert code == 1 and message in err and "Traceback" not in err, err
    assert err.startswith(f"Error: {f}")
    code, out, _ = run("--home", str(tmp_path / "h"), "--config", str(f), "config", "check", "--json")
    doc = json.loads(out)
    assert code == 1 and doc["ok"] is False and message in doc["error"]
    assert not (tmp_path / "h").exists()  # checking creates no home


def test_check_without_a_file_is_every_default(tmp_path):
    code, out, _ = run("--home", str(tmp_path / "h"), "config", "check")
    assert code == 0 and "(no file: every default): 0 key(s) set" in out
    code, _, err = run("--home", str(tmp_path / "h"), "--config", str(tmp_path / "missing.toml"), "config", "check")
    assert code == 1 and "missing.toml does not exist" in err


def test_show_lists_set_keys_with_defaults_and_masks_secrets(tmp_path):
    home = tmp_path / "h"
    home.mkdir()
    (home / "monitor.toml").write_text(GOOD)
    code, out, _ = run("--home", str(home), "config", "show", "--json")
    rows = {r["key"]: r for r in json.loads(out)}
    assert code == 0 and set(rows) == {"metrics.min_n", "worker.token", "notify.channels"}
    assert rows["metrics.min_n"] == {"key": "metrics.min_n", "value": 50, "source": str(home / "monitor.toml"),
                                     "default": 30}
    assert rows["worker.token"]["value"] == "(set)"
    slack = rows["notify.channels"]["value"][0]
    assert slack["url"] == "https://hooks.example.com/..." and slack["headers"] == {"Authorization": "(set)"}
    code, text, _ = run("--home", str(home), "config", "show")
    for secret in ("s3cret", "XXXXSECRET", "hunter2", "key=abc"):
        assert secret not in text and secret not in out
    assert "metrics.min_n" in text and "(default 30)" in text
    everything = json.loads(run("--home", str(home), "config", "show", "--all", "--json")[1])
    assert {r["key"] for r in everything} >= {"metrics.min_n", "dashboard.port", "worker.jobs_interval_s"}
    assert {r["source"] for r in everything if r["key"] == "dashboard.port"} == {"default"}


def test_show_masks_what_the_file_may_hide_a_secret_in(tmp_path):
    home = tmp_path / "h"
    home.mkdir()
    (home / "monitor.toml").write_text(
        '[classifiers.llm_judge]\nurl = "https://judge.example.org/v1?api_key=JUDGEKEY"\nmodel = "m"\n'
        'state_dir = "judge"\n'
        '[[notify.channels]]\nname = "mail"\ntype = "email"\nhost = "smtp.example.org"\nfrom = "a@example.org"\n'
        'to = ["b@example.org"]\npassword = "SMTPPASS"\n')  # inline: refused by the check, but shown
    code, out, err = run("--home", str(home), "config", "show", "--json")
    rows = {r["key"]: r["value"] for r in json.loads(out)}
    assert code == 0 and "JUDGEKEY" not in out and "SMTPPASS" not in out
    assert rows["classifiers.llm_judge"] == {"url": "https://judge.example.org/...", "model": "m", "state_dir": "judge"}
    assert rows["notify.channels"][0]["password"] == "(set)" and rows["notify.channels"][0]["to"] == ["b@example.org"]
    assert "fails `monitor config check`" in err and "notify.channels[0].password" in err


def test_check_json_is_json_for_a_missing_config_file_and_a_missing_home(tmp_path):
    code, out, _ = run("--config", str(tmp_path / "nope.toml"), "config", "check", "--json")
    assert code == 1 and json.loads(out)["ok"] is False and "does not exist" in json.loads(out)["error"]
    code, out, _ = run("--home", str(tmp_path / "typo"), "config", "check", "--json")
    assert code == 0 and "does not exist" in json.loads(out)["warnings"][0]
