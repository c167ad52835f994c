"""Checking a configuration as the worker reads it: the file, every key and type, ranges, alert rules,
notification channels and the LLM judge's options. Used by `monitor config check`, and by the worker at every run
(an edit that breaks the file leaves it on the last configuration that passed, and says so)."""
from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from monitor.config import load_config
from monitor.errors import ConfigError

# Keys that name an environment variable holding a secret.
ENV_KEYS = ("worker.token_env", "dashboard.password_env", "probes.api_key_env", "classifiers.llm_judge.api_key_env")


# Keys whose value is a secret wherever it is written: shown as "(set)", never printed.
SECRET_KEYS = ("worker.token", "dashboard.password")
# Keys of a notification channel or of the LLM judge's options that are shown as written. Any other key may hold a
# secret (a webhook's headers, an inline `password = "..."` the check refuses, a plugin channel's `routing_key`);
# `url` keeps its scheme and host only: a webhook carries its token in the path or the query.
PLAIN_CHANNEL_KEYS = frozenset({"name", "type", "enabled", "min_severity", "host", "port", "from", "to", "security",
                                "user_env", "password_env", "timeout_s", "verify_tls", "path"})
PLAIN_JUDGE_KEYS = frozenset({"model", "api_key_env", "sample_rate", "daily_budget", "state_dir", "timeout_s"})
_SECRET_NAME = re.compile(r"pass|token|secret|key|auth|cred", re.I)


def mask_url(url: str) -> str:
    """A URL with its scheme, host and port only ('https://hooks.slack.com/...'): paths, queries and user info
    often carry a token."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:
        return "(set)"
    if not parts.scheme or not host:
        return "(set)"
    tail = "/..." if (parts.path not in ("", "/") or parts.query or parts.fragment) else ""
    return f"{parts.scheme}://{host}{':' + str(port) if port else ''}{tail}"


def mask_table(table: dict, plain: frozenset) -> dict:
    """A channel table or the judge's options with every value but the `plain` keys masked."""
    out = {}
    for k, v in table.items():
        if k in plain and (k == "to" or not isinstance(v, (dict, list))):
            out[k] = v
        elif k == "url" and isinstance(v, str):
            out[k] = mask_url(v)
        elif isinstance(v, dict):
            out[k] = {h: "(set)" for h in v}
        else:
            out[k] = "(set)"
    return out


def _secret_values(data: dict) -> list[tuple[str, str]]:
    """(text as an error would quote it, its masked form) for each secret-bearing value of a parsed file."""
    found: list[Any] = []

    def walk(node: Any, path: str, plain: frozenset | None) -> None:
        # plain: None outside channels and the judge's options (only secret-named keys are secret), else the keys
        # shown as written there (everything else is secret).
        if isinstance(node, list):
            for v in node:
                walk(v, path, plain)
            return
        if not isinstance(node, dict):
            return
        for k, v in node.items():
            kp = f"{path}.{k}" if path else str(k)
            if kp == "notify.channels":
                walk(v, "notify.channels[]", PLAIN_CHANNEL_KEYS)
            elif kp == "classifiers.llm_judge":
                walk(v, kp, PLAIN_JUDGE_KEYS)
            elif plain is not None and k in plain or str(k).endswith("_env"):
                continue  # the name of an environment variable, an address, a number of seconds
            elif isinstance(v, (dict, list)):
                walk(v, kp, frozenset() if plain is not None else None)  # a channel's headers: all secret
            elif plain is not None or kp in SECRET_KEYS or kp == "probes.url" or _SECRET_NAME.search(str(k)):
                found.append(v)

    walk(data, "", None)
    out = []
    for v in found:
        if isinstance(v, bool) or not isinstance(v, (str, int, float)) or len(str(v)) < 4:
            continue
        text = str(v)
        out.append((text, _masked(text)))
    return sorted(set(out), key=lambda t: -len(t[0]))  # longest first: a token inside a URL goes with the URL


def _masked(text: str) -> str:
    if "://" in text:
        return mask_url(text)
    host, sep, _ = text.partition("/")
    # A webhook URL written without its scheme: its host says which one it is ('hooks.slack.com/...').
    return f"{host}/..." if sep and re.fullmatch(r"[\w-]+(\.[\w-]+)+(:\d+)?", host) else "(hidden)"


def scrub(text: str | None, data: dict | None) -> str | None:
    """`text` (an error message or hint) with every secret value of the parsed file `data` masked."""
    if not text or not data:
        return text
    for secret, masked in _secret_values(data):
        text = text.replace(secret, masked)
    return text


@dataclass
class Checked:
    config: Any
    rules: int
    channels: list[str]
    warnings: list[str]


def check_config(path: Path | None, home_root: Path) -> Checked:
    """Load and check the config at `path` as the worker would: the config, its rule and channel counts, warnings.

    Raises ConfigError (one line, with what to try) at the first problem, with the file's secret values masked: the
    worker keeps the message in its state, the audit log, /readyz and the config_invalid page, and a webhook URL
    written without its scheme would otherwise travel in all of them."""
    try:
        return _check(path, home_root)
    except ConfigError as e:
        data = _parsed(path if path is not None and path.exists() else home_root / "monitor.toml")
        message, hint = scrub(e.message, data), scrub(e.hint, data)
        if (message, hint) == (e.message, e.hint):
            raise
        raise ConfigError(message, hint) from None  # the original, secrets and all, stays out of tracebacks


def _parsed(path: Path) -> dict | None:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8-sig"))  # as load_config reads it: a BOM is skipped
    except (OSError, ValueError):
        return None


def _check(path: Path | None, home_root: Path) -> Checked:
    from monitor.alerts.rules import effective_rules
    from monitor.classify.llm_judge import validate_options
    from monitor.notify.base import parse_channels

    cfg = load_config(home_root, path if path is not None and path.exists() else None)
    origin = str(path or home_root / "monitor.toml")
    rules = effective_rules(cfg)
    channels = parse_channels(cfg.notify.channels, cfg.sources.get("notify.channels", origin), home_root)
    warnings: list[str] = []
    if cfg.classifiers.backend == "llm_judge" or cfg.classifiers.llm_judge:
        opts = dict(cfg.classifiers.llm_judge)
        env = opts.pop("api_key_env", None)  # checked below as a warning: this shell need not be the worker's
        try:
            validate_options(opts)
        except Exception as e:  # ClassifierError: reported as a config problem of its own key
            raise ConfigError(f"{origin}: 'classifiers.llm_judge': {getattr(e, 'message', e)}",
                              getattr(e, "hint", None)) from e
        if env:
            opts["api_key_env"] = env
    envs = [(key, _get(cfg, key)) for key in ENV_KEYS]
    for i, item in enumerate(cfg.notify.channels):
        for k in ("user_env", "password_env"):
            if isinstance(item, dict) and item.get(k):
                envs.append((f"notify.channels[{i}].{k}", item[k]))
    for key, name in envs:
        if name and name not in os.environ:
            warnings.append(f"'{key}' names the environment variable {name}, which is not set in this shell"
                            " (set it where the worker runs)")
    if not channels:
        warnings.append("no notification channel ([[notify.channels]]): alerts are recorded, nobody is paged")
    return Checked(cfg, len(rules), sorted(channels), warnings)


def _get(cfg, key: str):
    node: Any = cfg
    for part in key.split("."):
        node = node.get(part) if isinstance(node, dict) else getattr(node, part, None)
        if node is None:
            return None
    return node
