"""The `monitor` command: one verb per pipeline stage.

Each module ``monitor/cli/cmd_*.py`` exports ``commands`` (a list of click commands); they are collected here
in file-name order. Errors derived from MonitorError are printed as one line (plus what to try) on stderr with
exit code 1, never as a traceback.
"""
from __future__ import annotations

import importlib
import pkgutil
import sys

import click

from monitor import __version__
from monitor.errors import MonitorError


class Ctx:
    """Lazily opened home, shared by all sub-commands."""

    def __init__(self, home: str | None, config: str | None):
        self.home_arg, self.config_arg = home, config
        self._home = None

    @property
    def home(self):
        """The existing home; a one-line error, creating nothing, when --home names a folder that is not a home
        (a misspelt path must not turn into a new, empty home that answers every query with nothing)."""
        return self.open_home(create=False)

    def open_home(self, create: bool):
        """The home, created first when `create` (for the verbs that put data in: ingest, serve)."""
        if self._home is None:
            from monitor.home import Home

            self._home = Home.open(self.home_arg, self.config_arg, create=create)
        return self._home


class MonitorGroup(click.Group):
    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except MonitorError as e:
            click.secho(f"Error: {e.message}", fg="red", err=True)
            if e.hint:
                click.echo(f"  Try: {e.hint}", err=True)
            sys.exit(1)


@click.group(cls=MonitorGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--home", envvar="MONITOR_HOME", type=click.Path(file_okay=False),
              help="Data home (default ./monitor-data; env MONITOR_HOME).")
@click.option("--config", "config_file", type=click.Path(dir_okay=False),
              help="Config file (default <home>/monitor.toml; optional).")
@click.version_option(__version__, prog_name="alignment-monitor")
@click.pass_context
def cli(ctx: click.Context, home: str | None, config_file: str | None):
    """alignment-monitor: watch a deployed AI assistant's refusals, values and fairness.

    \b
    Examples:
      monitor demo                       # bundled real data, jobs, dashboard
      monitor ingest logs/ --json        # ingest a folder (an inbox)
      monitor jobs run                   # compute every metric now
      monitor sql "SELECT model, count(*) FROM turns GROUP BY 1"
    """
    ctx.obj = Ctx(home, config_file)


def _register() -> None:
    import monitor.cli as pkg

    for mod in sorted(m.name for m in pkgutil.iter_modules(pkg.__path__) if m.name.startswith("cmd_")):
        module = importlib.import_module(f"monitor.cli.{mod}")
        for command in getattr(module, "commands", []):
            cli.add_command(command)


_register()


def main() -> None:
    cli(prog_name="monitor")
