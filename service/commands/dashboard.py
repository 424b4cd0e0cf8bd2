"""``caviar dashboard``: a live web view of studies and panda sessions.

Needs the optional extra: ``pip install 'caviar[dashboard]'`` (Starlette, uvicorn, Jinja2), imported only
when the command runs.
"""

from __future__ import annotations

import contextlib
import ipaddress
from typing import Annotated

import typer

from core.errors import BadInput
from service.cli import EXIT_BAD_INPUT, app, err, fail
from service.commands._options import DbOption, from_config

#: Hosts that only this machine reaches.
_LOOPBACK_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost")


def _loopback(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _url(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host and not host.startswith("[") else host
    return f"http://{shown}:{port}/"


@app.command()
def dashboard(
    db: DbOption = None,
    host: Annotated[
        str,
        typer.Option("--host", help="Interface to listen on (anything but loopback is reachable by others)."),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port (1-65535).")] = 8080,
    allow_control: Annotated[
        bool,
        typer.Option("--allow-control", help="Accept state changes (cancel, panda set/pause/resume/stop/"
                     "rollback/fork), each with the token: CAVIAR_DASHBOARD_TOKEN, else one printed at "
                     "start."),
    ] = False,
    broker: Annotated[
        str | None,
        typer.Option("--broker", envvar="CAVIAR_BROKER_URL", callback=from_config("broker"),
                     help="Also show the broker's queue depth (redis://...)."),
    ] = None,
) -> None:
    """Serve a live web view of every study and panda session: leaderboards paged by the server, plots
    whose axes follow each distribution, learning curves that grow as trials train (server-sent
    events), the workers, /metrics for Prometheus and /healthz.

    Read-only unless --allow-control; then every change needs the token, sent by the page.

    Example:
        caviar dashboard --port 8080
    """
    if not 1 <= port <= 65535:
        raise BadInput("--port", port, "expected a port number from 1 to 65535")
    if not host.strip():
        raise BadInput("--host", host, "expected a host name or IP address, e.g. 127.0.0.1")
    try:
        import jinja2  # noqa: F401
        import starlette  # noqa: F401
        import uvicorn
    except ImportError as exc:
        missing = f"the dashboard needs {exc.name}: pip install 'caviar[dashboard]'"
        raise fail(missing, EXIT_BAD_INPUT) from None
    if allow_control:
        from service.settings import single_thread_env

        # a fork may recompute a session's state here: train single-threaded, as runners do
        single_thread_env()

    from service.dashboard.app import create_app
    from service.errors import mask_url

    loopback = _loopback(host)
    allowed = None if not loopback else ["127.0.0.1", "localhost", "::1", "[::1]", host]
    web = create_app(db, allow_control=allow_control, broker_url=broker, allowed_hosts=allowed)
    dash = web.state.dashboard
    if not loopback:
        err.print(f"warning: listening on {host}: anyone who can reach this machine can read every study "
                  "(use --host 127.0.0.1 and an SSH tunnel, or a reverse proxy with authentication)",
                  markup=False)
    typer.echo(f"caviar dashboard on {_url(host, port)}  (database {dash.reader.safe_url}"
               + (f", broker {mask_url(broker)}" if broker else "") + ")")
    if allow_control:
        if dash.token_generated:
            typer.echo(f"control is on; token (paste it in the page once): {dash.token}")
        else:
            typer.echo("control is on; token from CAVIAR_DASHBOARD_TOKEN")
    else:
        typer.echo("read-only (start with --allow-control to cancel studies and steer panda sessions)")
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C: uvicorn has shut down already
        uvicorn.run(web, host=host.strip("[]"), port=port, log_level="warning", access_log=False,
                    timeout_graceful_shutdown=3)
