"""The notification channel seam: a small base class, a ready message, and the registry of channel types.

Channel types register under the entry-point group ``alignment_monitor.channels`` (the built-ins too, in
pyproject.toml); the built-ins are also known without the entry points so a checkout that was not reinstalled
still works. Channel instances come from ``[[notify.channels]]`` tables, validated strictly here.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, ClassVar

from monitor.alerts.rules import SEVERITIES, SEVERITY_RANK
from monitor.errors import ConfigError

GROUP = "alignment_monitor.channels"
BUILTIN = {
    "webhook": "monitor.notify.channels:WebhookChannel",
    "slack": "monitor.notify.channels:SlackChannel",
    "email": "monitor.notify.channels:EmailChannel",
    "log": "monitor.notify.channels:LogFileChannel",
}


@dataclass
class Message:
    """A fully worded notification: channels deliver it, they never compute or reword the evidence."""

    subject: str
    body: str
    payload: dict[str, Any] = field(default_factory=dict)
    severity: str = "warning"
    kind: str = "alert"  # alert | escalation | update | unsilenced | digest
    alert_ids: list[int] = field(default_factory=list)
    # The incident the message is about (rule | metric | granularity | window | direction), the same on its
    # updates and escalations: a receiver that deduplicates (a PagerDuty dedup_key) keys on it. None for a digest.
    incident_key: str | None = None


class Channel:
    """A place notifications go: subclasses set `type` and `options` and implement `send` (raise NotifyError)."""

    type: ClassVar[str] = ""
    # option name -> (type or tuple of types, default, required)
    options: ClassVar[dict[str, tuple]] = {}

    def __init__(self, name: str, min_severity: str = "info", home_root: Path | None = None, **opts: Any):
        self.name = name
        self.min_severity = min_severity
        self.home_root = home_root
        self.opts = opts

    def wants(self, severity: str) -> bool:
        return SEVERITY_RANK[severity] >= SEVERITY_RANK[self.min_severity]

    def send(self, message: Message) -> None:  # pragma: no cover - the contract
        raise NotImplementedError

    @classmethod
    def check(cls, opts: dict[str, Any], path: str, origin: str) -> None:
        """Extra checks of a channel's options beyond their types (override when needed)."""


def _load(ref: str):
    import importlib

    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)


def registry() -> dict[str, type[Channel]]:
    """Channel type name -> class: the built-ins, then whatever is registered under the entry-point group."""
    types = {name: _load(ref) for name, ref in BUILTIN.items()}
    for ep in entry_points(group=GROUP):
        if ep.name not in types or ep.value != BUILTIN.get(ep.name):
            types[ep.name] = ep.load()
    return types


COMMON = {"name": str, "type": str, "min_severity": str, "enabled": bool}


def parse_channels(items: list, origin: str, home_root: Path | None = None) -> dict[str, Channel]:
    """Validate `[[notify.channels]]` tables and build the channels, keyed by name (disabled ones left out)."""
    types = registry()
    out: dict[str, Channel] = {}
    for i, item in enumerate(items):
        path = f"notify.channels[{i}]"
        if not isinstance(item, dict):
            raise ConfigError(f"{origin}: '{path}' must be a table ([[notify.channels]])")
        for key in ("name", "type"):
            if key not in item:
                raise ConfigError(f"{origin}: '{path}.{key}' is required", f"add {key} = ... to the channel")
        tname = item["type"]
        if tname not in types:
            close = difflib.get_close_matches(str(tname), list(types), n=1)
            raise ConfigError(f"{origin}: '{path}.type' must be one of {', '.join(sorted(types))}, got {tname!r}",
                              f"did you mean '{close[0]}'?" if close else None)
        cls = types[tname]
        allowed = {**COMMON, **{k: v[0] for k, v in cls.options.items()}}
        for key, value in item.items():
            kp = f"{path}.{key}"
            if key not in allowed:
                close = difflib.get_close_matches(key, list(allowed), n=1)
                raise ConfigError(f"{origin}: unknown key '{kp}' for a {tname} channel",
                                  f"did you mean '{close[0]}'?" if close else f"valid keys: {', '.join(allowed)}")
            tp = allowed[key]
            tps = tp if isinstance(tp, tuple) else (tp,)
            if (isinstance(value, bool) and bool not in tps) or not isinstance(value, tps) or (
                    isinstance(value, list) and not all(isinstance(v, str) for v in value)):
                want = " or ".join("number" if t in (int, float) else t.__name__ for t in tps)
                raise ConfigError(f"{origin}: '{kp}' must be {want}, got {type(value).__name__} {value!r}")
        for key, (_, _, required) in cls.options.items():
            if required and key not in item:
                raise ConfigError(f"{origin}: '{path}.{key}' is required for a {tname} channel")
        sev = item.get("min_severity", "info")
        if sev not in SEVERITIES:
            raise ConfigError(f"{origin}: '{path}.min_severity' must be one of {', '.join(SEVERITIES)}, got {sev!r}")
        opts = {k: item.get(k, d) for k, (_, d, _) in cls.options.items()}
        cls.check(opts, path, origin)
        if item["name"] in out:
            raise ConfigError(f"{origin}: '{path}.name' duplicates channel {item['name']!r}")
        if item.get("enabled", True):
            out[item["name"]] = cls(item["name"], sev, home_root, **opts)
    return out
