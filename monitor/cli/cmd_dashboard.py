"""`monitor dashboard`: start the Streamlit oversight dashboard on the configured home."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from importlib import resources
from pathlib import Path

import click

from monitor.errors import MonitorError


def app_path() -> Path:
    """Path of `dashboards/app.py` in the installed package; a MonitorError if the dashboard is not installed."""
    try:
        path = Path(str(resources.files("dashboards") / "app.py"))
    except ModuleNotFoundError as e:
        raise MonitorError("the dashboard package `dashboards` is not installed",
                           "reinstall alignment-monitor (pip install alignment-monitor)") from e
    if not path.is_file():
        raise MonitorError(f"dashboard app not found at {path}", "reinstall alignment-monitor")
    return path


def dashboard_command(home_root: Path, port: int, address: str) -> tuple[list[str], dict[str, str]]:
    """The `streamlit run` command line and environment that serve the dashboard for `home_root`."""
    cmd = [sys.executable, "-m", "streamlit", "run", str(app_path()),
           "--server.headless", "true", "--server.port", str(port), "--server.address", address,
           "--browser.gatherUsageStats", "false",
           # reviewers see the app, not Streamlit's developer options (no "Deploy" button, no "Rerun"/"Settings" for
           # developers): "viewer" keeps the menu's print and about entries
           "--client.toolbarMode", "viewer"]
    return cmd, {**os.environ, "MONITOR_HOME": str(home_root)}


def run_dashboard(home_root: Path, port: int, address: str) -> int:
    """Serve the dashboard in the foreground until Ctrl-C; returns Streamlit's exit code."""
    cmd, env = dashboard_command(home_root, port, address)
    host = "localhost" if address in ("127.0.0.1", "0.0.0.0") else address
    click.echo(f"dashboard: http://{host}:{port}  (home {home_root}; Ctrl-C to stop)", err=True)
    proc = subprocess.Popen(cmd, env=env)

    def forward(signum, _frame):  # a service manager stops this process, not the process group: pass it on
        proc.send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        return proc.wait()
    except KeyboardInterrupt:  # Streamlit got the same SIGINT from the terminal and shuts itself down
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.terminate()
            proc.wait()
        return 0
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


@click.command("dashboard")
@click.option("--port", type=click.IntRange(1, 65535), default=None,
              help="Port (default [dashboard] port, 8501).")
@click.option("--address", default="127.0.0.1", show_default=True,
              help="Address to listen on; 0.0.0.0 serves other machines too (set a password first).")
@click.pass_obj
def dashboard(obj, port, address):
    """Start the oversight dashboard (Streamlit) on this home.

    \b
    Examples:
      monitor dashboard
      monitor --home /srv/monitor dashboard --port 8502
      MONITOR_HOME=./monitor-demo monitor dashboard
    """
    home = obj.home
    code = run_dashboard(home.root, port or home.config.dashboard.port, address)
    if code not in (0, -2, 130, -signal.SIGTERM, 128 + signal.SIGTERM, -signal.SIGHUP, 128 + signal.SIGHUP):
        raise MonitorError(f"the dashboard (streamlit) exited with code {code}", "see the messages above")


commands = [dashboard]
