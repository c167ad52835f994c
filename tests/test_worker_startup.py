"""`monitor serve` refuses to start with a one-line error, not a traceback, when it cannot listen."""
import socket

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
