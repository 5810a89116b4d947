"""Hostile clients shared by the reliability tests and ``benchmarks/hostile_bench.py``."""

from __future__ import annotations

import json
import socket
from urllib.parse import urlsplit

NO_EOS = {"0": -100, "1": -100, "2": -100}  # SmolLM2's end tokens: a stream that runs to max_tokens


def open_unread_stream(url: str, model: str, max_tokens: int) -> socket.socket:
    """Start a long, fat chat stream on a socket with a tiny receive buffer, and return it unread.

    Chat chunks with 20 alternatives per token are ~3 KB, so the socket buffers fill within about a
    thousand tokens and the server sees a client that stopped reading. ``url`` is the server's root
    or its ``/v1`` base URL; closing the socket is the caller's job.
    """
    parts = urlsplit(url)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: it sets the TCP window
    sock.connect((parts.hostname or "127.0.0.1", parts.port or 80))
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": "Count to a million."}],
                       "max_tokens": max_tokens, "temperature": 0, "stream": True, "logprobs": True,
                       "top_logprobs": 20, "logit_bias": NO_EOS}).encode()
    sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    return sock
