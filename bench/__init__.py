"""Benchmarks: timings live here, never as assertions in tests (see TESTING.md).

``python -m bench.relay``: coreview's RTP-level forwarding against aiortc's MediaRelay
(decode and re-encode), with a direct link as the latency reference."""
