"""Built-in channels: generic JSON webhook, Slack incoming webhook, email over SMTP, and a JSON-lines log file.

Why hand-written httpx/smtplib rather than apprise: apprise's ``json://`` wraps every message in its own envelope
(version/title/message/type) where a webhook consumer here wants the alert's fields, and apprise reports a failed
delivery as ``False`` without the HTTP status or SMTP reply, which ``notify_attempts`` must record to be useful.
Each client is a dozen lines over a well-kept library (httpx, the stdlib smtplib).
"""
from __future__ import annotations

import json
import os
import smtplib
import ssl
from email.message import EmailMessage
from pathlib import Path

import httpx

from monitor.errors import ConfigError, NotifyError
from monitor.notify.base import Channel, Message

_NUM = (int, float)


def public_url(url: str, hidden: str = "...") -> str:
    """`url` fit to be shown or stored (an error message is kept in the outbox, the attempts and the audit log,
    readable with `monitor sql`; the dashboard shows the config): scheme and host, the rest as `hidden`. A Slack or
    webhook URL's path and query are often the credential itself."""
    scheme, _, rest = url.partition("://")
    host = rest.split("/", 1)[0].split("?", 1)[0].rsplit("@", 1)[-1]  # user:password@ dropped too
    return f"{scheme}://{host}/{hidden}" if rest.rstrip("/") != host else f"{scheme}://{host}"


def _post(url: str, payload: dict, headers: dict, timeout: float, what: str) -> None:
    shown = public_url(url)
    try:
        r = httpx.post(url, json=payload, headers=headers, timeout=timeout)
    except httpx.HTTPError as e:
        raise NotifyError(f"{what} {shown}: {type(e).__name__}: {str(e).replace(url, shown)}",
                          "is the receiver up and reachable?") from e
    if r.status_code >= 300:
        raise NotifyError(f"{what} {shown}: HTTP {r.status_code} {r.text[:200].replace(url, shown)!r}")


def _check_url(opts: dict, path: str, origin: str, key: str = "url") -> None:
    url = opts.get(key) or ""
    if not url.startswith(("http://", "https://")) or not url.split("://", 1)[1].strip("/"):
        raise ConfigError(f"{origin}: '{path}.{key}' must be an http(s) URL, got {url!r}")
    _check_timeout(opts, path, origin)


def _check_timeout(opts: dict, path: str, origin: str) -> None:
    # A zero or negative timeout fails every send: the alerts it carries would all end up dead.
    if not opts["timeout_s"] > 0:
        raise ConfigError(f"{origin}: '{path}.timeout_s' must be more than 0 seconds, got {opts['timeout_s']!r}")


class WebhookChannel(Channel):
    """POST the alert as JSON: {kind, subject, text, severity, alert_ids, incident_key, alerts: [...], links}."""

    type = "webhook"
    options = {"url": (str, None, True), "headers": (dict, {}, False), "timeout_s": (_NUM, 10.0, False)}

    @classmethod
    def check(cls, opts, path, origin):
        _check_url(opts, path, origin)
        bad = {k: v for k, v in (opts["headers"] or {}).items() if not isinstance(v, str)}
        if bad:
            key, value = next(iter(bad.items()))
            raise ConfigError(f"{origin}: '{path}.headers.{key}' must be a string, got {type(value).__name__} "
                              f"{value!r}", f'{key} = "{value}"')

    def send(self, message: Message) -> None:
        payload = {"kind": message.kind, "subject": message.subject, "text": message.body,
                   "severity": message.severity, "alert_ids": message.alert_ids, **message.payload}
        _post(self.opts["url"], payload, dict(self.opts["headers"] or {}), self.opts["timeout_s"], "webhook")


class SlackChannel(Channel):
    """Slack incoming webhook: a `text` fallback plus blocks (header, the evidence, the dashboard link)."""

    type = "slack"
    options = {"url": (str, None, True), "timeout_s": (_NUM, 10.0, False)}

    @classmethod
    def check(cls, opts, path, origin):
        _check_url(opts, path, origin)

    def send(self, message: Message) -> None:
        blocks = [
            {"type": "header", "text": {"type": "plain_text", "text": message.subject[:150]}},
            {"type": "section", "text": {"type": "mrkdwn", "text": message.body[:2900]}},
        ]
        links = message.payload.get("links") or []
        if links:
            blocks.append({"type": "context", "elements": [
                {"type": "mrkdwn", "text": " ".join(f"<{u}|alert {i}>" for i, u in links)[:2900]}]})
        _post(self.opts["url"], {"text": f"{message.subject}\n{message.body}", "blocks": blocks}, {},
              self.opts["timeout_s"], "slack webhook")


class EmailChannel(Channel):
    """Plain-text email over SMTP, with STARTTLS (default), implicit TLS (`security = "ssl"`) or none."""

    type = "email"
    options = {
        "host": (str, None, True), "port": (int, 587, False), "from": (str, None, True),
        "to": (list, None, True), "security": (str, "starttls", False), "user_env": (str, None, False),
        "password_env": (str, None, False), "timeout_s": (_NUM, 20.0, False),
        "verify_tls": (bool, True, False),
    }

    @classmethod
    def check(cls, opts, path, origin):
        if opts["security"] not in ("starttls", "ssl", "none"):
            raise ConfigError(f"{origin}: '{path}.security' must be one of starttls, ssl, none, "
                              f"got {opts['security']!r}")
        if not opts["to"] or not all("@" in a for a in opts["to"]):
            raise ConfigError(f"{origin}: '{path}.to' must be a list of email addresses, got {opts['to']!r}")
        if "@" not in (opts["from"] or ""):
            raise ConfigError(f"{origin}: '{path}.from' must be an email address, got {opts['from']!r}")
        if (opts["user_env"] or opts["password_env"]) and opts["security"] == "none" \
                and opts["host"] not in ("localhost", "127.0.0.1", "::1"):
            raise ConfigError(f"{origin}: '{path}.security' is \"none\" with credentials: the SMTP login would send "
                              f"the password to {opts['host']} in clear", 'security = "starttls" (or "ssl")')
        if not 0 < opts["port"] < 65536:
            raise ConfigError(f"{origin}: '{path}.port' must be a TCP port (1-65535), got {opts['port']!r}",
                              "587 for starttls, 465 for ssl, 25 for none")
        _check_timeout(opts, path, origin)

    def send(self, message: Message) -> None:
        o = self.opts
        msg = EmailMessage()
        # A header is one line: segment values come from the logs and may hold a line break ("hi\r\nBcc: ..."),
        # which email refuses (every attempt would fail and the page be lost) or would let a header through.
        msg["Subject"] = " ".join(message.subject.split())
        msg["From"] = o["from"]
        msg["To"] = ", ".join(o["to"])
        msg.set_content(message.body)
        ctx = ssl.create_default_context()
        if not o["verify_tls"]:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        user = password = None
        if o["user_env"] or o["password_env"]:
            user, password = os.environ.get(o["user_env"] or ""), os.environ.get(o["password_env"] or "")
            if not user or not password:
                raise NotifyError(f"email channel {self.name}: environment variables {o['user_env']} / "
                                  f"{o['password_env']} are not both set")
        try:
            if o["security"] == "ssl":
                smtp = smtplib.SMTP_SSL(o["host"], o["port"], timeout=o["timeout_s"], context=ctx)
            else:
                smtp = smtplib.SMTP(o["host"], o["port"], timeout=o["timeout_s"])
            with smtp:
                if o["security"] == "starttls":
                    smtp.starttls(context=ctx)
                if user:
                    smtp.login(user, password)
                smtp.send_message(msg)
        except (smtplib.SMTPException, OSError) as e:
            raise NotifyError(f"email via {o['host']}:{o['port']}: {type(e).__name__}: {e}",
                              "check host, port, security and credentials") from e


class LogFileChannel(Channel):
    """Append one JSON line per message to a file (relative paths are inside the home)."""

    type = "log"
    options = {"path": (str, "notifications.jsonl", False)}

    @classmethod
    def check(cls, opts, path, origin):
        if not opts["path"].strip():
            raise ConfigError(f"{origin}: '{path}.path' must name a file, got {opts['path']!r}",
                              'path = "notifications.jsonl" (relative paths are inside the home)')

    def send(self, message: Message) -> None:
        path = Path(self.opts["path"])
        if not path.is_absolute() and self.home_root is not None:
            path = self.home_root / path
        line = json.dumps({"kind": message.kind, "severity": message.severity, "subject": message.subject,
                           "text": message.body, "alert_ids": message.alert_ids,
                           "incident_key": message.incident_key}, ensure_ascii=False)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "a", encoding="utf-8") as f:
                f.write(line + "\n")
                f.flush()
                os.fsync(f.fileno())
        except OSError as e:
            raise NotifyError(f"log channel {self.name}: cannot write {path}: {e}") from e
