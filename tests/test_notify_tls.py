"""E-mail over STARTTLS and implicit TLS against a real local SMTP server (aiosmtpd) with a self-signed cert,
including authentication and certificate verification."""
import socket
import ssl
import subprocess

import pytest

from monitor.errors import NotifyError
from monitor.notify.base import Message, parse_channels
from monitor.notify.channels import EmailChannel


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def cert(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(d / "key.pem"), "-out", str(d / "cert.pem")], check=True, capture_output=True)
    return d / "cert.pem", d / "key.pem"


def _server_ctx(cert):
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(cert[0]), str(cert[1]))
    return ctx


class _Inbox:
    def __init__(self):
        self.mails = []

    async def handle_DATA(self, server, session, envelope):
        self.mails.append((session.authenticated, envelope.content.decode()))
        return "250 OK"


def _auth(server, session, envelope, mechanism, auth_data):
    from aiosmtpd.smtp import AuthResult

    ok = auth_data.login == b"monitor" and auth_data.password == b"hunter2"
    return AuthResult(success=ok)


MSG = Message(subject="[critical] under_refusal_rate", body="under_refusal_rate, all models: 0.31 (95% CI ...)",
              severity="critical", alert_ids=[1], payload={})


def _channel(port, security, verify=True, **kw):
    item = {"name": "mail", "type": "email", "host": "127.0.0.1", "port": port, "security": security,
            "from": "monitor@example.org", "to": ["oncall@example.org"], "verify_tls": verify, **kw}
    ch = parse_channels([item], "test.toml")["mail"]
    assert isinstance(ch, EmailChannel)
    return ch


def test_starttls_with_login(cert, monkeypatch):
    from aiosmtpd.controller import Controller

    inbox = _Inbox()
    port = _free_port()
    ctl = Controller(inbox, hostname="127.0.0.1", port=port, tls_context=_server_ctx(cert), require_starttls=True,
                     authenticator=_auth, auth_require_tls=True)
    ctl.start()
    try:
        monkeypatch.setenv("SMTP_USER", "monitor")
        monkeypatch.setenv("SMTP_PASSWORD", "hunter2")
        monkeypatch.setenv("SSL_CERT_FILE", str(cert[0]))  # trust the test CA for verification
        _channel(port, "starttls", user_env="SMTP_USER", password_env="SMTP_PASSWORD").send(MSG)
        assert len(inbox.mails) == 1 and inbox.mails[0][0] is True
        assert "under_refusal_rate" in inbox.mails[0][1]
        # A wrong password is a delivery failure with the server's reply, not a crash.
        monkeypatch.setenv("SMTP_PASSWORD", "nope")
        with pytest.raises(NotifyError, match="email via 127.0.0.1"):
            _channel(port, "starttls", user_env="SMTP_USER", password_env="SMTP_PASSWORD", timeout_s=3).send(MSG)
        assert len(inbox.mails) == 1
    finally:
        ctl.stop()


def test_starttls_refuses_an_untrusted_certificate(cert, monkeypatch):
    from aiosmtpd.controller import Controller

    inbox = _Inbox()
    port = _free_port()
    ctl = Controller(inbox, hostname="127.0.0.1", port=port, tls_context=_server_ctx(cert), require_starttls=True)
    ctl.start()
    try:
        monkeypatch.delenv("SSL_CERT_FILE", raising=False)
        with pytest.raises(NotifyError, match="SSL"):
            _channel(port, "starttls").send(MSG)
        assert inbox.mails == []
        _channel(port, "starttls", verify=False).send(MSG)  # explicit opt-out for self-signed relays
        assert len(inbox.mails) == 1
    finally:
        ctl.stop()


def test_implicit_tls(cert, monkeypatch):
    from aiosmtpd.controller import Controller

    inbox = _Inbox()
    port = _free_port()
    ctl = Controller(inbox, hostname="127.0.0.1", port=port, ssl_context=_server_ctx(cert))
    ctl.start()
    try:
        monkeypatch.setenv("SSL_CERT_FILE", str(cert[0]))
        _channel(port, "ssl").send(MSG)
        assert len(inbox.mails) == 1
    finally:
        ctl.stop()
