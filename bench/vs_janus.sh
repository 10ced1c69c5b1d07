#!/bin/sh
# Janus VideoRoom and coreview back to back, in one private network namespace:
# Janus (an external harness), coreview (bench.relay), Janus again.
#
#   JANUS_HARNESS=DIR [ROUNDS=N] bench/vs_janus.sh [SESSIONS [SECONDS]]   as root; 4 and 20
#
# The harness is not part of this repository: DIR holds prep.py (prepares its media),
# netns.sh (sets up the namespace: lo and a veth address, then runs its arguments) and
# run.py NAME:janus:SESSIONS:SECONDS (aiortc clients on bench.relay's session shape,
# through Janus; writes runs/NAME/result.json with janus_cpu_per_media_s_per_session and
# per-track latency). See docs/benchmarks.md.
# Needs the Debian packages janus and janus-tools (apt-get install -y janus janus-tools).
# The harness runs in a temporary copy, with this repository's virtualenv (aiortc, av,
# aiohttp, numpy). coreview's run defaults to `--compare loop=asyncio,uvloop --pairs 1`
# (both loops); set RELAY_ARGS to change it. ROUNDS (1) coreview runs alternate with
# ROUNDS + 1 Janus runs. Prints each server's CPU-s per media-second per session, the
# added latency, and coreview's ratio to the mean of the two Janus runs around each of
# its runs (on the loop compared last, uvloop, the default) with their median; the
# runs' own spread is ~10 % either way. Stops only the processes it started.
set -eu
REPO=$(cd "$(dirname "$0")/.." && pwd)
HARNESS=${JANUS_HARNESS:-}
VENV=${VENV:-$REPO/.venv}
SESSIONS=${1:-4}
SECONDS_=${2:-20}
RELAY_ARGS=${RELAY_ARGS:---compare loop=asyncio,uvloop --pairs 1}
ROUNDS=${ROUNDS:-1}

command -v janus >/dev/null || { echo "janus is missing: apt-get install -y janus janus-tools" >&2; exit 2; }
[ -x "$VENV/bin/python" ] || { echo "no virtualenv at $VENV (make test creates it)" >&2; exit 2; }
[ -n "$HARNESS" ] && [ -d "$HARNESS" ] || { echo "set JANUS_HARNESS to the Janus harness directory (not in this repository)" >&2; exit 2; }

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cp -r "$HARNESS" "$WORK/janus"
ln -s "$VENV" "$WORK/janus/.venv"  # run.py starts ./.venv/bin/python
cd "$WORK/janus"
"$VENV/bin/python" prep.py >prep.log 2>&1

# Inside the namespace: lo and a veth address for Janus (netns.sh), then Janus and
# coreview alternated: J1, coreview 1, J2, coreview 2, ..., J(ROUNDS + 1).
unshare --net ./netns.sh sh -c "
  set -e
  .venv/bin/python run.py J1:janus:$SESSIONS:$SECONDS_
  for round in \$(seq 1 $ROUNDS); do
    (cd '$REPO' && PYTHONPATH='$REPO'${PYTHONPATH:+:$PYTHONPATH} '$VENV/bin/python' -m bench.relay \
       --sessions $SESSIONS --seconds $SECONDS_ --client-procs 2 $RELAY_ARGS) | tee coreview-\$round.out
    .venv/bin/python run.py J\$((round + 1)):janus:$SESSIONS:$SECONDS_
  done
"

"$VENV/bin/python" - "$WORK/janus" "$ROUNDS" <<'EOF'
import json, pathlib, statistics, sys

work, rounds = pathlib.Path(sys.argv[1]), int(sys.argv[2])


def janus(n: int) -> float:
    result = json.loads((work / "runs" / f"J{n}" / "result.json").read_text())
    p50 = statistics.median(
        c["tracks"][t]["p50_ms"] for c in result["clients"] for t in ("face", "doc")
    )
    cpu = float(result["janus_cpu_per_media_s_per_session"])
    print(f"  Janus J{n}: {cpu:.4f}  (frame latency p50 {p50:.1f} ms, from hand-over, marker arrival)")
    return cpu


print("\nCPU-s per media-second per session (same namespace, back to back):")
ratios = []
before = janus(1)
for n in range(1, rounds + 1):
    coreview = json.loads((work / f"coreview-{n}.out").read_text().splitlines()[-1])
    variants = coreview.get("compare", {}).get("variants") or {"room": coreview}
    for variant, figures in variants.items():
        print(f"  coreview {variant}: {figures['cpu_per_session']:.4f}"
              f"  (added p95 {figures['latency_p95_ms']} ms over its direct twin,"
              f" {figures['frames_lost']} frames lost)")
    print(f"  coreview frame latency p50 {coreview['frame_latency_p50_ms']} ms, twin"
          f" {coreview['direct_latency_p50_ms']} ms; late joiner"
          f" {coreview['late_join_first_frame_ms']} ms")
    after = janus(n + 1)
    served = list(variants.values())[-1]["cpu_per_session"]
    ratios.append(served / ((before + after) / 2))
    before = after
print("coreview / Janus (the mean of the two runs around it):",
      ", ".join(f"{r:.2f}" for r in ratios), f"(median {statistics.median(ratios):.2f})")
EOF
