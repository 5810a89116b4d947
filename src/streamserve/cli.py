"""The ``streamserve`` command: ``serve`` runs the server, ``bench`` measures any OpenAI-compatible one."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

import uvicorn

from streamserve import __version__
from streamserve.bench.cli import add_bench_parser, run_bench
from streamserve.config import DEFAULT_MAX_REQUEST_BYTES, ModerationConfig, ServerConfig, default_data_dir, duration
from streamserve.engine import EngineConfig
from streamserve.models import BUILTIN_MODELS, DEFAULT_MODEL


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with the ``serve`` and ``bench`` subcommands."""
    parser = argparse.ArgumentParser(prog="streamserve", description=__doc__)
    parser.add_argument("--version", action="version", version=f"streamserve {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    _add_serve_parser(commands)
    add_bench_parser(commands)
    return parser


def _add_serve_parser(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    builtins = "; ".join(f"{m.name}: {m.description}" for m in BUILTIN_MODELS.values())
    serve = commands.add_parser("serve", help="run the OpenAI-compatible server",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                                description="Serve a GGUF model over the OpenAI Chat Completions, "
                                            "Completions and Responses APIs, streaming token by token.")
    http = serve.add_argument_group("HTTP")
    http.add_argument("--host", default="127.0.0.1", help="address to listen on")
    http.add_argument("--port", type=int, default=8000, help="port to listen on")
    http.add_argument("--api-key", default=None,
                      help="require 'Authorization: Bearer KEY' on /v1 routes (env STREAMSERVE_API_KEY)")
    http.add_argument("--allowed-origins", default="",
                      help="comma-separated CORS origins for browser front-ends ('*' for any)")
    http.add_argument("--shutdown-grace", type=float, default=30.0,
                      help="on SIGTERM or Ctrl-C, seconds running streams may take to finish before they are ended "
                           "(new requests get 503 meanwhile); a second signal ends them at once")
    http.add_argument("--no-playground", dest="playground", action="store_false",
                      help="do not serve the browser playground (served at / and /playground by default)")
    http.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"],
                      help="log verbosity")
    model = serve.add_argument_group("model")
    model.add_argument("--model", default=DEFAULT_MODEL,
                       help=f"a built-in model name or a path to a .gguf file. Built-ins: {builtins}")
    model.add_argument("--served-model-name", action="append", default=[],
                       help="name(s) clients use for the model; repeatable or comma-separated, all aliases "
                            "(e.g. 'smollm2-135m-instruct,gpt-4o-mini'). Default: the model's name")
    model.add_argument("--chat-template", metavar="FILE",
                       help="a Jinja chat template file overriding the model's own")
    engine = serve.add_argument_group("engine")
    defaults = EngineConfig()
    engine.add_argument("--ctx-size", type=int, default=defaults.ctx_size,
                        help="context of one sequence (prompt + output); the KV cache holds ctx-size x parallel")
    engine.add_argument("--parallel", type=int, default=defaults.parallel,
                        help="sequences decoded together (continuous batching lanes)")
    engine.add_argument("--max-queue", type=int, default=defaults.max_queue,
                        help="sequences that may wait for a lane; beyond that requests get 429")
    engine.add_argument("--threads", type=int, default=defaults.n_threads, help="CPU threads for llama.cpp")
    engine.add_argument("--max-batch-tokens", type=int, default=defaults.max_batch_tokens,
                        help="tokens decoded in one step at most")
    engine.add_argument("--prefill-stall", type=float, default=defaults.prefill_stall,
                        help="while streams decode, a step reading a new prompt may take at most this many "
                             "times a decode-only step (sized online); lower keeps streams smoother, higher "
                             "reads long prompts faster")
    engine.add_argument("--max-backlog", type=int, default=defaults.max_backlog,
                        help="steps a stream's client may leave unread (beyond what the sockets buffer) before its "
                             "sequence is aborted and its lane freed")
    engine.add_argument("--extra-bufts", choices=["auto", "on", "off"], default=defaults.extra_bufts,
                        help="llama.cpp's extra CPU buffer types (AMX, repacked weights): 'auto' first proves a "
                             "decode works with them in a short-lived child process (they crash on some CPUs) "
                             "and falls back to plain kernels if it dies")
    engine.add_argument("--prefill-step-ms", type=float, default=defaults.prefill_step_time * 1000,
                        help="a step reading prompt tokens takes at most about this long (sized online): a "
                             "request arriving while a long prompt is read waits about this long for its own")
    engine.add_argument("--long-prompt", type=int, default=defaults.long_prefill_token_threshold, metavar="TOKENS",
                        help="a prompt with more than this many tokens to read (after the prompt cache) is long")
    engine.add_argument("--max-long-reads", type=int, default=defaults.max_long_partial_prefills, metavar="N",
                        help="long prompts read at once; another waits without a lane, and shorter requests "
                             "go first (0: no limit)")
    engine.add_argument("--deterministic", action="store_true",
                        help="decode each sequence's rows in llama.cpp calls of their own, so greedy and seeded "
                             "output never depends on other traffic, at a throughput cost (docs/determinism.md)")
    engine.add_argument("--prompt-grid", type=int, default=defaults.prompt_grid,
                        help="prompts are read in grid-aligned chunks of this many tokens, and only whole chunks "
                             "are reused from the prompt cache, so a cached prompt gives a fresh read's output; "
                             "at least the row count from which the CPU's matmuls change path (see "
                             "benchmarks/determinism_probe.py)")
    limits = serve.add_argument_group("request limits")
    limits.add_argument("--max-tokens-default", type=int, default=None,
                        help="cap on max_tokens when a request gives none (chat defaults to the rest of the context)")
    limits.add_argument("--max-n", type=int, default=8, help="largest n (choices per request)")
    limits.add_argument("--max-request-bytes", type=int, default=DEFAULT_MAX_REQUEST_BYTES,
                        help="largest request body; larger ones get 413 before they are read")
    limits.add_argument("--max-request-sequences", type=int, default=16,
                        help="most sequences (prompts x n) one request may ask for (at most parallel + max-queue); "
                             "beyond it a 400, so that one request cannot fill the queue")
    _add_moderation_arguments(serve)
    store = serve.add_argument_group("stored responses (/v1/responses)")
    store.add_argument("--data-dir", default=str(default_data_dir()),
                       help="directory of the response database (SQLite); one server per directory")
    store.add_argument("--store", metavar="URL", default=None,
                       help="a PostgreSQL database shared by several replicas (postgresql://USER@HOST:PORT/DB) "
                            "instead of SQLite in --data-dir; see docs/scale-out.md")
    store.add_argument("--store-lease", type=duration, default="15s",
                       help="with --store: a replica that stops renewing its lease this long is taken as lost, "
                            "and another fails its running responses (within 4/3 of it)")
    store.add_argument("--store-ttl", type=duration, default="30d",
                       help="how long stored responses are kept (90s, 10m, 12h, 30d)")
    store.add_argument("--store-events-ttl", type=duration, default="10m",
                       help="how long a response's stream events are kept after it ends, for resuming streams")
    store.add_argument("--store-sweep-interval", type=duration, default="1m",
                       help="how often expired responses and event logs are deleted")
    serve.set_defaults(handler=_serve)


def _add_moderation_arguments(serve: argparse.ArgumentParser) -> None:
    moderation = serve.add_argument_group("moderation (see docs/moderation.md)")
    defaults = ModerationConfig()
    moderation.add_argument("--moderation", choices=["off", "blocking", "async"], default=defaults.mode,
                            help="server default for streams: blocking releases text only once checked; async "
                                 "checks behind the text and ends a violating stream within the window. Prompts "
                                 "are checked (400 content_filter) unless off")
    moderation.add_argument("--moderation-window", type=int, default=defaults.window, metavar="N",
                            help="released text is never more than N characters behind generation (blocking), "
                                 "checks never more than N behind released text (async)")
    moderation.add_argument("--moderation-rules", metavar="FILE",
                            help="TOML word lists and patterns per OpenAI category")
    moderation.add_argument("--moderation-classifier", choices=["profanity"],
                            help="the alt-profanity-check classifier (pip install 'streamserve[profanity]'), "
                                 "as harassment")
    moderation.add_argument("--moderation-threshold", type=float, default=defaults.classifier_threshold,
                            help="classifier score at or above which text is flagged")
    moderation.add_argument("--moderation-model", metavar="PATH",
                            help="a guard model (GGUF path or built-in name) prompted in the Llama Guard 3 format")


def _config(args: argparse.Namespace) -> tuple[ServerConfig, tuple[str, ...]]:
    from streamserve.models import resolve_model

    name, _ = resolve_model(args.model)
    names = tuple(dict.fromkeys(n.strip() for arg in args.served_model_name for n in arg.split(",") if n.strip()))
    engine = EngineConfig(parallel=args.parallel, ctx_size=args.ctx_size, max_queue=args.max_queue,
                          n_threads=args.threads,
                          max_batch_tokens=max(args.max_batch_tokens, args.parallel - 1 + args.prompt_grid),
                          prefill_stall=args.prefill_stall, prefill_step_time=args.prefill_step_ms / 1000,
                          extra_bufts=args.extra_bufts, max_backlog=args.max_backlog,
                          prompt_grid=args.prompt_grid, long_prefill_token_threshold=args.long_prompt,
                          max_long_partial_prefills=args.max_long_reads, deterministic=args.deterministic)
    moderation = ModerationConfig(
        mode=args.moderation, window=args.moderation_window, rules_file=args.moderation_rules,
        classifier=args.moderation_classifier, classifier_threshold=args.moderation_threshold,
        guard_model=args.moderation_model,
    )
    _check_moderation(moderation)
    config = ServerConfig(
        model=args.model, host=args.host, port=args.port, served_model_names=names or (name,),
        api_key=args.api_key or os.environ.get("STREAMSERVE_API_KEY") or None, chat_template_file=args.chat_template,
        max_tokens_default=args.max_tokens_default, max_n=args.max_n, max_request_bytes=args.max_request_bytes,
        max_request_sequences=args.max_request_sequences,
        allowed_origins=tuple(o.strip() for o in args.allowed_origins.split(",") if o.strip()),
        playground=args.playground, engine=engine, moderation=moderation,
        data_dir=Path(args.data_dir).expanduser(), store_ttl=args.store_ttl, store_events_ttl=args.store_events_ttl,
        store_sweep_interval=args.store_sweep_interval, store_url=args.store, store_lease=args.store_lease,
    )
    return config, config.served_model_names


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
    from streamserve.api.app import create_app
    from streamserve.server import Server
    from streamserve.store import StoreError, check_data_dir, is_shared

    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config, names = _config(args)
        if not is_shared(config.store_url):
            check_data_dir(config.data_dir)
    except (ValueError, FileNotFoundError, StoreError) as exc:
        print(f"streamserve: {exc}", file=sys.stderr)
        return 2
    app = create_app(config, names)
    server = Server(uvicorn.Config(app, host=config.host, port=config.port, log_level=args.log_level,
                                   timeout_graceful_shutdown=10), app.state.streamserve, args.shutdown_grace)
    try:
        server.run()
    except KeyboardInterrupt:  # a Ctrl-C before the server ran, or one uvicorn forced out
        return 128 + signal.SIGINT
    return 128 + signal.SIGINT if server.interrupted else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``streamserve`` console script."""
    args = build_parser().parse_args(argv)
    if args.command == "bench":
        return run_bench(args)
    return int(args.handler(args))


if __name__ == "__main__":
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    sys.exit(main())
