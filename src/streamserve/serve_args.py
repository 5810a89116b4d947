"""The ``streamserve serve`` flags, and the ServerConfig they make.

Flags are named as vLLM names the same setting (``--max-model-len``, ``--max-num-seqs``,
``--max-num-batched-tokens``, ``--long-prefill-token-threshold``, ``--max-long-partial-prefills``,
``--shutdown-timeout``), and after their config field otherwise. The names they replaced stay for one
release as deprecated aliases. Every default comes from the config dataclasses, and nothing is adjusted
here: a combination the config rejects is the config's error.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from streamserve.cli_flags import DEPRECATED, DeprecatedAlias, duration
from streamserve.config import ModerationConfig, ServerConfig, default_engine
from streamserve.durations import format_duration, parse_duration
from streamserve.engine import EngineConfig
from streamserve.models import BUILTIN_MODELS, parse_size
from streamserve.models.memory import DEFAULT_SHARE


def add_serve_parser(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``serve`` on the main parser's subcommands, its defaults read from ServerConfig."""
    serve = commands.add_parser("serve", help="run the OpenAI-compatible server",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                                description="Serve a GGUF model over the OpenAI Chat Completions, "
                                            "Completions and Responses APIs, streaming token by token. "
                                            "Durations take a unit: 500ms, 30s, 10m, 2h, 30d (a bare number "
                                            "is seconds).")
    defaults = ServerConfig()
    _add_http_arguments(serve, defaults)
    _add_model_arguments(serve, defaults)
    _add_engine_arguments(serve, defaults.engine)
    _add_limit_arguments(serve, defaults)
    _add_moderation_arguments(serve, defaults.moderation)
    _add_store_arguments(serve, defaults)
    serve.set_defaults(**{DEPRECATED: ()})


def _add_http_arguments(serve: argparse.ArgumentParser, defaults: ServerConfig) -> None:
    http = serve.add_argument_group("HTTP")
    http.add_argument("--host", default=defaults.host, help="address to listen on")
    http.add_argument("--port", type=int, default=defaults.port, help="port to listen on")
    http.add_argument("--api-key", default=defaults.api_key,
                      help="require 'Authorization: Bearer KEY' on /v1 routes (env STREAMSERVE_API_KEY)")
    http.add_argument("--allowed-origins", default=",".join(defaults.allowed_origins),
                      help="comma-separated CORS origins for browser front-ends ('*' for any)")
    http.add_argument("--shutdown-timeout", type=duration, default=format_duration(defaults.shutdown_timeout),
                      metavar="DURATION",
                      help="on SIGTERM or Ctrl-C, how long running streams may take to finish before they are "
                           "ended (new requests get 503 meanwhile; 0 ends them at once); a second signal ends "
                           "them at once")
    http.add_argument("--shutdown-grace", dest="shutdown_timeout", type=duration, action=DeprecatedAlias,
                      replacement="--shutdown-timeout", metavar="DURATION")
    http.add_argument("--no-playground", dest="playground", action="store_false", default=defaults.playground,
                      help="do not serve the browser playground (served at / and /playground by default)")
    http.add_argument("--log-level", default=defaults.log_level, choices=["debug", "info", "warning", "error"],
                      help="log verbosity")


def _add_model_arguments(serve: argparse.ArgumentParser, defaults: ServerConfig) -> None:
    builtins = "; ".join(f"{m.name}: {m.description}" for m in BUILTIN_MODELS.values())
    model = serve.add_argument_group("models (docs/models.md)")
    model.add_argument("--model", action="append", default=[],
                       help=f"a built-in model name or a path to a .gguf file; repeatable: several models load on "
                            f"demand by each request's 'model'. Default: {defaults.models.names[0]}. "
                            f"Built-ins: {builtins}")
    model.add_argument("--models-dir", metavar="DIR",
                       help="serve every .gguf file in DIR (named after the file), loaded on demand")
    model.add_argument("--models-file", metavar="FILE",
                       help="a TOML file of models with options of their own: aliases, context, lanes, chat "
                            "template, pinned, preloaded, keep-alive")
    model.add_argument("--served-model-name", action="append", default=[],
                       help="name(s) clients use for the one --model; repeatable or comma-separated, all aliases "
                            "(e.g. 'smollm2-135m-instruct,gpt-4o-mini'). Default: the model's name")
    model.add_argument("--chat-template", metavar="FILE",
                       help="a Jinja chat template file overriding the models' own")
    model.add_argument("--max-memory", type=_size, default=defaults.max_memory, metavar="SIZE",
                       help="memory all loaded models may take together (weights, KV cache, buffers), e.g. 8GiB; "
                            "to make room the least recently used idle model is unloaded. Default: "
                            f"{int(DEFAULT_SHARE * 100)}%% of the memory available at start")
    model.add_argument("--keep-alive", type=duration, default=defaults.keep_alive, metavar="DURATION",
                       help="unload a model idle this long (10m, 1h); default: keep it while memory allows. A "
                            "request's keep_alive (Ollama's) replaces it for its model")


def _size(text: str) -> int:
    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _add_engine_arguments(serve: argparse.ArgumentParser, defaults: EngineConfig) -> None:
    engine = serve.add_argument_group("engine")
    engine.add_argument("--max-model-len", type=int, default=defaults.max_model_len, metavar="TOKENS",
                        help="context of one sequence (prompt + output), as vLLM's; the KV cache holds "
                             "max-model-len x max-num-seqs tokens (llama-server's -c counts the whole cache)")
    engine.add_argument("--ctx-size", dest="max_model_len", type=int, action=DeprecatedAlias,
                        replacement="--max-model-len", metavar="TOKENS")
    engine.add_argument("--max-num-seqs", type=int, default=defaults.max_num_seqs, metavar="N",
                        help="sequences decoded together (continuous batching lanes)")
    engine.add_argument("--parallel", dest="max_num_seqs", type=int, action=DeprecatedAlias,
                        replacement="--max-num-seqs", metavar="N")
    engine.add_argument("--max-queue", type=int, default=defaults.max_queue,
                        help="sequences that may wait for a lane; beyond that requests get 429")
    engine.add_argument("--threads", type=int, default=defaults.n_threads, help="CPU threads for llama.cpp")
    engine.add_argument("--max-num-batched-tokens", type=int, default=defaults.max_num_batched_tokens,
                        metavar="TOKENS", help="tokens decoded in one step at most (at least max-num-seqs - 1 + "
                                               "prompt-grid)")
    engine.add_argument("--max-batch-tokens", dest="max_num_batched_tokens", type=int, action=DeprecatedAlias,
                        replacement="--max-num-batched-tokens", metavar="TOKENS")
    engine.add_argument("--prefill-stall", type=float, default=defaults.prefill_stall,
                        help="while streams decode, a step that prefills a new prompt may take at most this many "
                             "times a decode-only step (sized online); lower keeps streams smoother, higher "
                             "prefills long prompts faster")
    engine.add_argument("--max-backlog", type=int, default=defaults.max_backlog,
                        help="steps a stream's client may leave unread (beyond what the sockets buffer) before its "
                             "sequence is aborted and its lane freed")
    engine.add_argument("--extra-bufts", choices=["auto", "on", "off"], default=defaults.extra_bufts,
                        help="llama.cpp's extra CPU buffer types (AMX, repacked weights): 'auto' first proves a "
                             "decode works with them in a short-lived child process (they crash on some CPUs) "
                             "and falls back to plain kernels if it dies")
    engine.add_argument("--prefill-step-time", type=duration, default=format_duration(defaults.prefill_step_time),
                        metavar="DURATION",
                        help="a step that prefills prompt tokens takes at most about this long (sized online): a "
                             "request arriving while a long prompt is prefilled waits about this long for its own")
    engine.add_argument("--prefill-step-ms", dest="prefill_step_time", type=float, action=DeprecatedAlias,
                        replacement="--prefill-step-time", convert=lambda ms: ms / 1000, metavar="MS",
                        note=" (this one counts milliseconds)")
    engine.add_argument("--long-prefill-token-threshold", type=int, default=defaults.long_prefill_token_threshold,
                        metavar="TOKENS",
                        help="a prompt with more than this many tokens to prefill (after the prompt cache) is long")
    engine.add_argument("--long-prompt", dest="long_prefill_token_threshold", type=int, action=DeprecatedAlias,
                        replacement="--long-prefill-token-threshold", metavar="TOKENS")
    engine.add_argument("--max-long-partial-prefills", type=int, default=defaults.max_long_partial_prefills,
                        metavar="N", help="long prompts prefilled at once; another waits without a lane, and "
                                          "shorter requests go first (0: no limit)")
    engine.add_argument("--max-long-reads", dest="max_long_partial_prefills", type=int, action=DeprecatedAlias,
                        replacement="--max-long-partial-prefills", metavar="N")
    engine.add_argument("--deterministic", action="store_true", default=defaults.deterministic,
                        help="decode each sequence's rows in llama.cpp calls of their own, so greedy and seeded "
                             "output never depends on other traffic, at a throughput cost (docs/determinism.md)")
    engine.add_argument("--speculative", choices=("off", "auto", "ngram"), default=defaults.speculative,
                        help="draftless speculative decoding: drafts from each sequence's prompt and output, "
                             "verified in one decode, wherever the sequence's measured acceptance and this CPU's "
                             "measured cost of a verification say it is faster. auto (the default) drafts only as "
                             "many tokens as the startup probe finds keep greedy output bit for bit what it is "
                             "without drafts (with several threads, none on this llama.cpp build); ngram drafts "
                             "whatever pays (output may then change in near-ties, as under load); off never "
                             "drafts. A request's prediction is drafted from in every mode; --deterministic turns "
                             "all drafting off (docs/speculation.md)")
    engine.add_argument("--prompt-grid", type=int, default=defaults.prompt_grid,
                        help="prompts are prefilled in grid-aligned chunks of this many tokens, and only whole "
                             "chunks are reused from the prompt cache, so a cached prompt gives a fresh prefill's "
                             "output; at least the row count from which the CPU's matmuls change path (see "
                             "benchmarks/determinism_probe.py)")


def _add_limit_arguments(serve: argparse.ArgumentParser, defaults: ServerConfig) -> None:
    limits = serve.add_argument_group("request limits")
    limits.add_argument("--max-tokens-default", type=int, default=defaults.max_tokens_default,
                        help="cap on max_tokens when a request gives none (chat defaults to the rest of the context)")
    limits.add_argument("--max-n", type=int, default=defaults.max_n, help="largest n (choices per request)")
    limits.add_argument("--max-request-bytes", type=int, default=defaults.max_request_bytes,
                        help="largest request body; larger ones get 413 before they are read")
    limits.add_argument("--max-request-sequences", type=int, default=defaults.max_request_sequences,
                        help="most sequences (prompts x n) one request may ask for (at most max-num-seqs + "
                             "max-queue); beyond it a 400, so that one request cannot fill the queue")


def _add_moderation_arguments(serve: argparse.ArgumentParser, defaults: ModerationConfig) -> None:
    moderation = serve.add_argument_group("moderation (see docs/moderation.md)")
    moderation.add_argument("--moderation", choices=["off", "blocking", "async"], default=defaults.mode,
                            help="server default for streams: blocking releases text only once checked; async "
                                 "checks behind the text and ends a violating stream within the window. Prompts "
                                 "are checked (400 content_filter) unless off")
    moderation.add_argument("--moderation-window", type=int, default=defaults.window, metavar="N",
                            help="released text is never more than N characters behind generation (blocking), "
                                 "checks never more than N behind released text (async)")
    moderation.add_argument("--moderation-rules", metavar="FILE", default=defaults.rules_file,
                            help="TOML word lists and patterns per OpenAI category")
    moderation.add_argument("--moderation-classifier", choices=["profanity"], default=defaults.classifier,
                            help="the alt-profanity-check classifier (pip install 'streamserve[profanity]'), "
                                 "as harassment")
    moderation.add_argument("--moderation-threshold", type=float, default=defaults.classifier_threshold,
                            help="classifier score at or above which text is flagged")
    moderation.add_argument("--moderation-model", metavar="PATH", default=defaults.guard_model,
                            help="a guard model (GGUF path or built-in name) prompted in the Llama Guard 3 format")


def _add_store_arguments(serve: argparse.ArgumentParser, defaults: ServerConfig) -> None:
    store = serve.add_argument_group("stored responses (/v1/responses)")
    store.add_argument("--data-dir", default=str(defaults.data_dir),
                       help="directory of the response database (SQLite); one server per directory")
    store.add_argument("--store", metavar="URL", default=defaults.store_url,
                       help="a PostgreSQL database shared by several replicas (postgresql://USER@HOST:PORT/DB) "
                            "instead of SQLite in --data-dir; see docs/scale-out.md")
    store.add_argument("--store-lease", type=duration, default=format_duration(defaults.store_lease),
                       metavar="DURATION",
                       help="with --store: a replica that stops renewing its lease this long is taken as lost, "
                            "and another fails its running responses (within 4/3 of it)")
    store.add_argument("--store-ttl", type=duration, default=format_duration(defaults.store_ttl),
                       metavar="DURATION", help="how long stored responses are kept")
    store.add_argument("--store-events-ttl", type=duration, default=format_duration(defaults.store_events_ttl),
                       metavar="DURATION",
                       help="how long a response's stream events are kept after it ends, for resuming streams")
    store.add_argument("--store-sweep-interval", type=duration,
                       default=format_duration(defaults.store_sweep_interval), metavar="DURATION",
                       help="how often expired responses and event logs are deleted")


def server_config(args: argparse.Namespace) -> ServerConfig:
    """The ServerConfig a parsed ``serve`` command line asks for; ValueError if the config rejects it."""
    from streamserve.models import build_catalog, resolve_model

    names = tuple(dict.fromkeys(n.strip() for arg in args.served_model_name for n in arg.split(",") if n.strip()))
    models = args.model or ([] if args.models_dir or args.models_file else list(ServerConfig().models.names[:1]))
    for source in models:
        resolve_model(source)  # an unknown model fails here, before the server starts
    catalog = build_catalog(models, served_names=names, chat_template_file=args.chat_template,
                            models_dir=Path(args.models_dir).expanduser() if args.models_dir else None,
                            models_file=Path(args.models_file).expanduser() if args.models_file else None,
                            duration=parse_duration)
    engine = EngineConfig(
        max_model_len=args.max_model_len, max_num_seqs=args.max_num_seqs, max_queue=args.max_queue,
        n_threads=args.threads, max_num_batched_tokens=args.max_num_batched_tokens,
        prefill_stall=args.prefill_stall, prefill_step_time=args.prefill_step_time, extra_bufts=args.extra_bufts,
        max_backlog=args.max_backlog, prompt_grid=args.prompt_grid,
        long_prefill_token_threshold=args.long_prefill_token_threshold,
        max_long_partial_prefills=args.max_long_partial_prefills, deterministic=args.deterministic,
        speculative=args.speculative, probe_cache=default_engine().probe_cache,
    )
    moderation = ModerationConfig(
        mode=args.moderation, window=args.moderation_window, rules_file=args.moderation_rules,
        classifier=args.moderation_classifier, classifier_threshold=args.moderation_threshold,
        guard_model=args.moderation_model,
    )
    return ServerConfig(
        models=catalog, host=args.host, port=args.port, max_memory=args.max_memory, keep_alive=args.keep_alive,
        api_key=args.api_key or os.environ.get("STREAMSERVE_API_KEY") or None,
        max_tokens_default=args.max_tokens_default, max_n=args.max_n, max_request_bytes=args.max_request_bytes,
        max_request_sequences=args.max_request_sequences,
        allowed_origins=tuple(o.strip() for o in args.allowed_origins.split(",") if o.strip()),
        playground=args.playground, engine=engine, moderation=moderation,
        data_dir=Path(args.data_dir).expanduser(), store_ttl=args.store_ttl, store_events_ttl=args.store_events_ttl,
        store_sweep_interval=args.store_sweep_interval, store_url=args.store, store_lease=args.store_lease,
        shutdown_timeout=args.shutdown_timeout,
        log_level=args.log_level,
    )
