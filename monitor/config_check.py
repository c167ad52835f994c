"""Checking a configuration as the worker reads it: the file, every key and type, ranges, alert rules,
notification channels and the LLM judge's options. Used by `monitor config check`, and by the worker at every run
(an edit that breaks the file leaves it on the last configuration that passed, and says so)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from monitor.config import load_config
from monitor.errors import ConfigError

# Keys that name an environment variable holding a secret.
ENV_KEYS = ("worker.token_env", "dashboard.password_env", "probes.api_key_env", "classifiers.llm_judge.api_key_env")


@dataclass
class Checked:
    config: Any
    rules: int
    channels: list[str]
    warnings: list[str]


def check_config(path: Path | None, home_root: Path) -> Checked:
    """Load and check the config at `path` as the worker would: the config, its rule and channel counts, warnings.

    Raises ConfigError (one line, with what to try) at the first problem."""
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
