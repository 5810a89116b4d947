"""The ``streamserve`` command: ``serve`` runs the server, ``bench`` measures any OpenAI-compatible one."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Sequence

import uvicorn

from streamserve import __version__
from streamserve.bench.cli import add_bench_parser, run_bench
from streamserve.bench.extra import EXIT_MISSING, missing_extra
from streamserve.cli_flags import deprecation_warnings
from streamserve.config import ModerationConfig
from streamserve.serve_args import add_serve_parser, server_config

logger = logging.getLogger("streamserve")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with the ``serve`` and ``bench`` subcommands."""
    parser = argparse.ArgumentParser(prog="streamserve", description=__doc__)
    parser.add_argument("--version", action="version", version=f"streamserve {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    add_serve_parser(commands)
    add_bench_parser(commands)
    return parser


def _check_moderation(config: ModerationConfig) -> None:
    """Fail before the server starts: a rules file that does not load, a missing extra, an unknown guard."""
    from streamserve.models import resolve_model
    from streamserve.moderation import RulesPolicy
    from streamserve.moderation.profanity import available

    if config.rules_file:
        RulesPolicy.from_file(config.rules_file)
    if config.classifier == "profanity" and not available():
        raise ValueError("--moderation-classifier profanity needs the optional extra: "
                         "pip install 'streamserve[profanity]'")
    if config.guard_model:
        resolve_model(config.guard_model)


def _serve(args: argparse.Namespace) -> int:
    """Run the server a parsed ``serve`` command line asks for; 2 if its settings are invalid."""
    from streamserve.api.app import create_app
    from streamserve.server import Server
    from streamserve.store import StoreError, check_data_dir, is_shared

    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for warning in deprecation_warnings(args):
        logger.warning("%s", warning)
    try:
        config = server_config(args)
        _check_moderation(config.moderation)
        if not is_shared(config.store_url):
            check_data_dir(config.data_dir)
    except (ValueError, FileNotFoundError, StoreError) as exc:
        print(f"streamserve: {exc}", file=sys.stderr)
        return 2
    app = create_app(config)
    server = Server(uvicorn.Config(app, host=config.host, port=config.port, log_level=config.log_level,
                                   timeout_graceful_shutdown=10), app.state.streamserve, config.shutdown_timeout)
    try:
        server.run()
    except KeyboardInterrupt:  # a Ctrl-C before the server ran, or one uvicorn forced out
        return 128 + signal.SIGINT
    return 128 + signal.SIGINT if server.interrupted else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``streamserve`` console script.

    ``bench`` without the ``bench`` extra stops here with one line naming it, before any parsing
    (``bench --help`` included): the subcommand needs rich and matplotlib, and ``serve`` never does.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["bench"] and (problem := missing_extra()) is not None:
        print(problem, file=sys.stderr)
        return EXIT_MISSING
    args = build_parser().parse_args(argv)
    if args.command == "bench":
        return run_bench(args)
    return _serve(args)


if __name__ == "__main__":
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    sys.exit(main())
