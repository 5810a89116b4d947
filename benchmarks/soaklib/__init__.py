"""The soak benchmark's parts, driven by ``benchmarks/soak.py``; not installed with streamserve.

A strict checker of streamed responses (``wire``, ``logprobs``, ``accounting``, ``verdict``), the
request plan (``plan``), the run itself (``run``), the server's memory over it (``memory``), and
what is made of a run: the JSON record (``summary``), the plot (``plot``) and the docs section
(``doc``). It sends through ``streamserve.bench``'s client, so it measures any OpenAI-compatible
server the same way ``streamserve bench`` does.
"""
