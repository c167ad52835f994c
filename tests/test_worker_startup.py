"""`monitor serve` refuses to start with a one-line error, not a traceback: it cannot listen, or alerting is broken."""
import logging
import platform
import socket
import subprocess
import sys

import pytest
from click.testing import CliRunner

from monitor.cli import cli


def test_port_in_use_is_a_one_line_error(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = CliRunner().invoke(cli, ["--home", str(tmp_path / "home"), "serve", "--port", str(port)])
    assert r.exit_code == 1, r.output
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in r.stderr
    assert "Try: is a worker already running?" in r.stderr and "Traceback" not in r.output


@pytest.mark.parametrize("toml, words", [
    ('[[notify.channels]]\nname = "x"\ntype = "webhok"\nurl = "http://127.0.0.1:1/"\n',
     "'notify.channels[0].type' must be one of email, log, slack, webhook, got 'webhok'"),
    ('[[alerts.rules]]\nname = "x"\nmetric = "over_refusal_rat"\nkind = "threshold"\nop = ">"\nvalue = 0.1\n',
     "alerts.rules[0].metric"),
    # The LLM judge's options: `monitor config check` refuses them, so every run of the worker would too.
    ('[classifiers.llm_judge]\nurl = "http://127.0.0.1:9/v1"\n', "llm_judge option(s) missing: model, state_dir"),
])
def test_broken_alerting_config_stops_the_worker_at_start(tmp_path, toml, words):
    home = tmp_path / "home"
    home.mkdir()
    (home / "monitor.toml").write_text(toml)
    r = subprocess.run([sys.executable, "-m", "monitor", "--home", str(home), "serve", "--port", "0"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 1, r.stderr
    assert words in r.stderr and "Traceback" not in r.stderr and "monitor worker:" not in r.stdout


def test_an_interval_beyond_a_year_is_a_one_line_error(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "monitor.toml").write_text("[worker]\njobs_interval_s = 1e12\n")
    r = subprocess.run([sys.executable, "-m", "monitor", "--home", str(home), "serve", "--port", "0"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 1, r.stderr
    assert "'worker.jobs_interval_s' is 1e+12 s: a schedule runs at least once a year" in r.stderr
    assert "Traceback" not in r.stderr



@pytest.mark.parametrize("channels, warned", [("", True), ('[[notify.channels]]\nname = "f"\ntype = "log"\n', False)])
def test_a_worker_without_channels_says_nobody_is_paged(tmp_path, caplog, channels, warned):
    from monitor.home import Home
    from monitor.worker import check_alerting

    root = tmp_path / "home"
    root.mkdir()
    (root / "monitor.toml").write_text(channels)
    with caplog.at_level(logging.WARNING, logger="monitor.worker"):
        check_alerting(Home.open(root))
    assert ("no notification channels" in caplog.text and "nobody is paged" in caplog.text) == warned


@pytest.mark.skipif(platform.machine() not in ("x86_64", "aarch64") or sys.platform != "linux",
                    reason="tgkill syscall number known for Linux x86_64 / aarch64 only")
def test_sigterm_received_by_a_non_main_thread_stops_the_worker(tmp_path):
    """A service manager's SIGTERM goes to the process; the kernel hands it to any thread (here: the last one)."""
    import ctypes
    import os
    import signal

    home = tmp_path / "home"
    home.mkdir()
    (home / "monitor.toml").write_text('[[notify.channels]]\nname = "f"\ntype = "log"\n')
    proc = subprocess.Popen([sys.executable, "-m", "monitor", "--home", str(home), "serve", "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout.readline().startswith("monitor worker: http://")
        thread = max(int(t) for t in os.listdir(f"/proc/{proc.pid}/task") if int(t) != proc.pid)
        tgkill = {"x86_64": 234, "aarch64": 131}[platform.machine()]
        assert ctypes.CDLL(None, use_errno=True).syscall(tgkill, proc.pid, thread, signal.SIGTERM) == 0
        assert proc.wait(timeout=60) == 0
    finally:
        proc.kill()
        proc.communicate()
