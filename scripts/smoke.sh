#!/usr/bin/env bash
# Smoke run of the CLI on one Node binary: a 3-step LoRA training of the shipped tiny model, then
# `generate` and `chat` with the adapter (chat is where Node 26 once hit a V8 fatal error).
#   bash scripts/smoke.sh <path to node> <scratch folder>
set -euo pipefail
NODE=$1
OUT=$2
cd "$(dirname "$0")/.."
rm -rf "$OUT"
"$NODE" bin/loraforge.js train examples/identity.yaml --max-steps 3 --output-dir "$OUT" \
  --device cpu --save-steps 0 --eval-steps 0 > "$OUT.train.log" 2>&1 || { cat "$OUT.train.log"; exit 1; }
reply=$("$NODE" bin/loraforge.js generate --model assets/tiny-chat --adapter "$OUT" \
  --prompt 'Who are you?' --max-new-tokens 16 --device cpu 2>/dev/null)
[ -n "$reply" ] || { echo "smoke: generate printed nothing"; exit 1; }
chat=$(printf 'Who are you?\n/exit\n' | "$NODE" bin/loraforge.js chat --model assets/tiny-chat \
  --adapter "$OUT" --max-new-tokens 16 --device cpu 2>/dev/null)
[ -n "$chat" ] || { echo "smoke: chat printed nothing"; exit 1; }
echo "smoke $("$NODE" --version): ok (generate: ${reply//$'\n'/ })"
