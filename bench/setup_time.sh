#!/usr/bin/env bash
# How long `bash scripts/setup.sh` takes in a fresh clone on a cold pip cache (target: under 4 minutes on 2
# idle cores), including the one-time conversion of the SmolLM2 GGUF into a fresh $RMS_CACHE.
#   bash bench/setup_time.sh
# Prints one table row. CPU seconds (user+sys of the whole setup) hardly depend on other load; wall seconds
# do, so the load average at the start is printed too.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d /tmp/rms-setup-time.XXXXXX)
git clone -q "$repo" "$work/clone"
load=$(cut -d' ' -f1 /proc/loadavg)
PIP_NO_CACHE_DIR=1 RMS_CACHE="$work/rms-cache" /usr/bin/time -f "%e %U %S" -o "$work/time" \
  bash "$work/clone/scripts/setup.sh" > "$work/setup.log" 2>&1 || { tail -20 "$work/setup.log"; exit 1; }
read -r wall user sys < "$work/time"
echo "| setup (fresh clone, cold pip cache) | wall s | CPU s (user+sys) | load average at start |"
echo "|---|---:|---:|---:|"
printf "| %s | %.0f | %.0f | %s |\n" "$(git -C "$repo" rev-parse --short HEAD)" "$wall" "$(echo "$user + $sys" | bc)" "$load"
rm -rf "$work"
