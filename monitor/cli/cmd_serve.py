"""`monitor serve`: the long-running worker."""
from __future__ import annotations

import logging

import click


@click.command("serve")
@click.option("--host", default=None, help="Listen address (default worker.host, 127.0.0.1).")
@click.option("--port", type=int, default=None, help="HTTP port (default worker.port, 8600; 0 = any free port).")
@click.option("--log-level", default="INFO", type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"]))
@click.pass_obj
def serve_cmd(obj, host, port, log_level):
    """Run the worker: scheduled jobs, inbox pick-up, live ingestion over HTTP, notifications.

    \b
    Endpoints: POST /v1/logs (JSONL or JSON array), POST /v1/traces (OTLP/HTTP),
               GET /healthz (liveness), GET /readyz (503 with reasons: scheduler
               stopped, a job failed, stale jobs), GET /metrics (Prometheus).
    Examples:
      monitor serve --port 8600
      curl -X POST --data-binary @logs.jsonl http://127.0.0.1:8600/v1/logs
      curl -s http://127.0.0.1:8600/readyz
    """
    from monitor.worker import serve

    logging.basicConfig(level=log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    serve(obj.open_home(create=True), host, port)


commands = [serve_cmd]
