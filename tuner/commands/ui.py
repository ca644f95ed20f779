"""``infertune ui``: serve the MLflow UI on the embedded store and print links into it."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from tuner.commands.common import runs_folder
from tuner.util.errors import ConfigError


def add_parser(commands: argparse._SubParsersAction) -> None:
    """The ``ui`` subcommand's arguments, bound to its handler."""
    ui = commands.add_parser("ui", help="serve the MLflow UI on the embedded store")
    ui.add_argument("--host", default="127.0.0.1")
    ui.add_argument("--port", type=int, default=5000)
    ui.add_argument("--run", help="print the links to this run (its deployable trial first) instead of the tasks'")
    ui.add_argument("--links-only", action="store_true", help="print the links and exit (a UI already serves them)")
    ui.set_defaults(handler=cmd_ui)


def cmd_ui(args: argparse.Namespace) -> int:
    """Serve the MLflow UI on the embedded store; print direct links to each experiment's runs and to ``--run``."""
    from tuner.tracking import resolve_tracking_uri
    from tuner.tracking.ui_links import experiment_links, run_links

    uri = resolve_tracking_uri(args.tracking_uri, runs_folder(args))
    if not uri.startswith("sqlite:"):
        raise ConfigError("the UI serves the embedded SQLite store; open the tracking server itself",
                          field="--tracking-uri", value=uri)
    base = f"http://{args.host}:{args.port}"
    logging.getLogger("mlflow").setLevel(logging.WARNING)  # not the store's set-up chatter before the links
    if args.run:
        links = run_links(uri, base, args.run)
        if not links:
            raise ConfigError("no infertune run of that name in the MLflow store (infertune runs lists the runs; "
                              "infertune sync RUN uploads one)", field="--run", value=args.run)
        print(f"MLflow UI for run {args.run}:")
        for label, link in links:
            print(f"  {label}: {link}")
    else:
        links = experiment_links(uri, base)
        print("MLflow UI, the runs of each task:" if links else "MLflow UI: no runs logged yet")
        for name, link, count in links:
            print(f"  {name} ({count} runs): {link}")
    if args.links_only:
        return 0
    print(f"serving {uri} on {base}; Ctrl-C stops it", flush=True)
    command = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", uri, "--host", args.host,
               "--port", str(args.port), "--workers", "1"]
    os.execv(sys.executable, command)
    return 0
