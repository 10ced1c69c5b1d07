"""Benchmarks: timings live here, never as assertions in tests (docs/design.md,
"Testing"). Each module's docstring says what it measures; docs/benchmarks.md lists them
with the commands and the current figures.

``python -m bench.relay``: coreview's RTP-level forwarding against aiortc's MediaRelay
(decode and re-encode), with a direct link as the latency reference."""
