#!/bin/sh
# Janus VideoRoom and coreview back to back, in one private network namespace:
# Janus (../shared/anchors/janus harness), coreview (bench.relay), Janus again.
#
#   bench/vs_janus.sh [SESSIONS [SECONDS]]        as root (unshare); defaults 4 and 20
#
# Needs the Debian packages janus and janus-tools (apt-get install -y janus janus-tools).
# The harness runs in a temporary copy, with this repository's virtualenv (aiortc, av,
# aiohttp, numpy). coreview's run defaults to `--compare loop=asyncio,uvloop --pairs 1`
# (both loops); set RELAY_ARGS to change it. Prints each server's CPU-s per media-second
# per session and the added latency; stops only the processes it started.
set -eu
REPO=$(cd "$(dirname "$0")/.." && pwd)
HARNESS=${JANUS_HARNESS:-$REPO/../shared/anchors/janus}
VENV=${VENV:-$REPO/.venv}
SESSIONS=${1:-4}
SECONDS_=${2:-20}
RELAY_ARGS=${RELAY_ARGS:---compare loop=asyncio,uvloop --pairs 1}

command -v janus >/dev/null || { echo "janus is missing: apt-get install -y janus janus-tools" >&2; exit 2; }
[ -x "$VENV/bin/python" ] || { echo "no virtualenv at $VENV (make test creates it)" >&2; exit 2; }
[ -d "$HARNESS" ] || { echo "no Janus harness at $HARNESS" >&2; exit 2; }

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cp -r "$HARNESS" "$WORK/janus"
ln -s "$VENV" "$WORK/janus/.venv"  # run.py starts ./.venv/bin/python
cd "$WORK/janus"
"$VENV/bin/python" prep.py >prep.log 2>&1

# Inside the namespace: lo and a veth address for Janus (netns.sh), then the three runs.
unshare --net ./netns.sh sh -c "
  set -e
  .venv/bin/python run.py J1:janus:$SESSIONS:$SECONDS_
  (cd '$REPO' && PYTHONPATH='$REPO'${PYTHONPATH:+:$PYTHONPATH} '$VENV/bin/python' -m bench.relay --sessions $SESSIONS \
     --seconds $SECONDS_ --client-procs 2 $RELAY_ARGS) | tee coreview.out
  .venv/bin/python run.py J2:janus:$SESSIONS:$SECONDS_
"

"$VENV/bin/python" - "$WORK/janus" <<'EOF'
import json, pathlib, statistics, sys

work = pathlib.Path(sys.argv[1])
print("\nCPU-s per media-second per session (same namespace, back to back):")
for name in ("J1", "J2"):
    result = json.loads((work / "runs" / name / "result.json").read_text())
    p50 = statistics.median(
        c["tracks"][t]["p50_ms"] for c in result["clients"] for t in ("face", "doc")
    )
    print(f"  Janus {name}: {result['janus_cpu_per_media_s_per_session']:.4f}"
          f"  (frame latency p50 {p50:.1f} ms, from hand-over, marker arrival)")
    if name == "J1":
        coreview = json.loads((work / "coreview.out").read_text().splitlines()[-1])
        variants = coreview.get("compare", {}).get("variants") or {"room": coreview}
        for variant, figures in variants.items():
            print(f"  coreview {variant}: {figures['cpu_per_session']:.4f}"
                  f"  (added p95 {figures['latency_p95_ms']} ms over its direct twin)")
        first = next(iter(variants))
        print(f"  coreview {first} frame latency p50 {coreview['frame_latency_p50_ms']} ms, "
              f"twin {coreview['direct_latency_p50_ms']} ms")
EOF
