"""`newsagg serve`: the read-only web interface, JSON API and feeds."""

from __future__ import annotations

import argparse
import logging
import sys

from pipeline.cli.base import EXIT_OK, _reading
from pipeline.errors import NewsaggError


def _cmd_serve(args: argparse.Namespace) -> int:
    import ipaddress
    import socket

    import uvicorn

    from pipeline.web import create_app
    from pipeline.web.app import open_services

    settings = _reading(args)
    host = args.host or settings.web.host
    port = settings.web.port if args.port is None else args.port
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback and args.host is None:
        print(f"newsagg: warning: serving on {host} (from the settings), not on loopback: anyone who can reach "
              "this address can read the stories; pass --host to make it explicit", file=sys.stderr)
    # Opened here, not in the server's startup, so that bad settings or a store that cannot be
    # opened are one line and exit 2 or 1 as for any command, not a traceback and exit 3.
    with open_services(settings) as services:
        try:  # bound here, so the address printed is the one listening (port 0: the port chosen)
            listening = socket.create_server((host, port), family=socket.AF_INET6 if ":" in host else socket.AF_INET)
        except OSError as exc:
            raise NewsaggError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        with listening:
            shown = f"[{host}]" if ":" in host else host
            print(f"newsagg: serving the stories of {settings.data_dir if settings.store_url is None else 'the store'} "
                  f"on http://{shown}:{listening.getsockname()[1]}/ (Ctrl-C stops)", file=sys.stderr, flush=True)
            # The server's own lines (requests, errors) through the command's logging: its level and format.
            uvicorn.run(create_app(settings, services), fd=listening.fileno(), log_config=None,
                        log_level=logging.getLogger().getEffectiveLevel(), server_header=False,
                        forwarded_allow_ips=settings.web.trusted_proxies)
    return EXIT_OK


def _port(text: str) -> int:
    """A TCP port number, 0 to 65535, as ``--port`` takes it."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 0 to 65535, not {port}")
    return port


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    """Add `serve` to the commands."""
    serve = commands.add_parser(
        "serve", parents=[common], help="read-only web interface, JSON API (/api) and feeds (/feed.atom, /feed.json)",
        description="Serve the stories of the store and search backend the settings name: pages to browse and "
        "search them and see what each outlet changed, a JSON API described at /openapi.json, and Atom and JSON "
        "feeds with one entry per story. Read-only.",
    )
    serve.add_argument("--host", help="address to listen on (default: settings web.host, 127.0.0.1)")
    serve.add_argument("--port", type=_port, help="port to listen on (default: settings web.port, 8000; 0: any free port)")
    serve.set_defaults(handler=_cmd_serve)
