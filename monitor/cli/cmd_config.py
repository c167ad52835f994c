"""`monitor config`: check a configuration before the worker reads it, and show the configuration in force.

The worker re-reads `monitor.toml` at every scheduled run, so an edit takes effect without a restart; a broken edit
is not taken (the worker keeps the last good configuration and the config_invalid alert says so).
`monitor config check` finds it before the next run, with the checks `monitor serve` makes at start
(TOML, every key and type, ranges, alert rules, notification channels, the LLM judge's options), plus warnings for
secrets named by an environment variable that is not set in this shell.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from monitor.config_check import PLAIN_CHANNEL_KEYS, PLAIN_JUDGE_KEYS, SECRET_KEYS, check_config, mask_table, mask_url
from monitor.errors import ConfigError


def _config_path(obj) -> Path:
    from monitor.config import CONFIG_NAME
    from monitor.home import resolve_root

    if obj.config_arg:
        return Path(obj.config_arg).expanduser().resolve()
    return resolve_root(obj.home_arg) / CONFIG_NAME


def _flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        kp = f"{prefix}.{k}" if prefix else k
        if isinstance(v, dict) and not prefix:
            out.update(_flatten(v, kp))
        else:
            out[kp] = v
    return out


def _mask(key: str, value: Any) -> Any:
    if key in SECRET_KEYS:
        return None if value is None else "(set)"
    if key == "notify.channels":
        return [mask_table(item, PLAIN_CHANNEL_KEYS) if isinstance(item, dict) else "(set)" for item in value]
    if key == "classifiers.llm_judge" and isinstance(value, dict):
        return mask_table(value, PLAIN_JUDGE_KEYS)
    if key == "probes.url" and isinstance(value, str):
        return mask_url(value)
    return value


def effective(cfg, include_defaults: bool) -> list[dict]:
    """Rows of key, value (secrets masked) and source ("default" or the file), set keys first if not all."""
    from monitor.config import Config

    values = _flatten(cfg.as_dict())
    defaults = _flatten(Config().as_dict())
    rows = []
    for key, value in values.items():
        source = cfg.sources.get(key, "default")
        if source == "default" and not include_defaults:
            continue
        rows.append({"key": key, "value": _mask(key, value), "source": source,
                     "default": _mask(key, defaults.get(key))})
    return rows


@click.group("config")
def config_group():
    """Check the configuration before the worker reads it; show the configuration in force.

    \b
    The worker re-reads monitor.toml at every run: check an edit first.
    Examples:
      monitor config check                 # the home's monitor.toml (or --config FILE)
      monitor --config new.toml config check
      monitor config show                  # keys set in the file, with their defaults
      monitor config show --all --json
    """


@config_group.command("check")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON (ok, file, warnings, error).")
@click.pass_obj
def check_cmd(obj, as_json):
    """Check monitor.toml as `monitor serve` does at start; exit 1 at the first problem.

    Checks TOML syntax, every key and type, ranges, alert rules, notification channels and the LLM judge's
    options, and warns about secrets named by an environment variable that is not set in this shell.
    """
    from monitor.home import resolve_root

    path = _config_path(obj)
    root = resolve_root(obj.home_arg)
    try:
        if obj.config_arg and not path.exists():
            raise ConfigError(f"config file {path} does not exist", "check the --config path")
        checked = check_config(path, root)
    except ConfigError as e:
        if as_json:
            click.echo(json.dumps({"ok": False, "file": str(path), "error": e.message, "hint": e.hint}))
            raise SystemExit(1) from None
        raise
    set_keys = sum(1 for s in checked.config.sources.values() if s != "default")
    if not obj.config_arg and not root.is_dir():  # a typo in --home or MONITOR_HOME checks nothing
        checked.warnings.insert(0, f"the home {root} does not exist: no configuration file was checked")
    if as_json:
        click.echo(json.dumps({"ok": True, "file": str(path), "exists": path.exists(), "keys_set": set_keys,
                               "rules": checked.rules, "channels": checked.channels, "warnings": checked.warnings}))
        return
    where = str(path) if path.exists() else f"{path} (no file: every default)"
    click.echo(f"OK: {where}: {set_keys} key(s) set, {checked.rules} alert rule(s),"
               f" {len(checked.channels)} notification channel(s)")
    for w in checked.warnings:
        click.secho(f"warning: {w}", fg="yellow", err=True)


@config_group.command("show")
@click.option("--all", "include_defaults", is_flag=True, help="Every key, defaults included.")
@click.option("--json", "as_json", is_flag=True, help="A list of {key, value, source, default}.")
@click.pass_obj
def show_cmd(obj, include_defaults, as_json):
    """Show the configuration in force: each key set in the file with its default (secrets masked)."""
    from monitor.config import load_config
    from monitor.home import resolve_root

    path = _config_path(obj)
    if obj.config_arg and not path.exists():
        raise ConfigError(f"config file {path} does not exist", "check the --config path")
    root = resolve_root(obj.home_arg)
    cfg = load_config(root, path if path.exists() else None)
    try:  # the worker does not take a file that fails the checks: what it shows is then not in force
        check_config(path, root)
    except ConfigError as e:
        click.secho(f"warning: this file fails `monitor config check` ({e.message}): a running worker keeps its last"
                    " good configuration, not these values", fg="yellow", err=True)
    rows = effective(cfg, include_defaults)
    if as_json:
        click.echo(json.dumps(rows, default=str))
        return
    if not rows:
        click.echo(f"{path}: no file or no keys set: every value is the default (--all lists them)")
        return
    width = max(len(r["key"]) for r in rows)
    for r in rows:
        value = json.dumps(r["value"], default=str)
        note = "" if r["source"] == "default" else f"   (default {json.dumps(r['default'], default=str)})"
        click.echo(f"{r['key']:<{width}}  {value}{note}")


commands = [config_group]
