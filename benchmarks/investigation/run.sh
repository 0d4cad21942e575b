#!/usr/bin/env bash
# Issue 5's "why doesn't LORE come out ahead" experiments on the offline default (16-shot, seeds
# 0/1/2, the ablation's 2,000-image test subset). Each line is one `lorevit bench ablation` run;
# the baseline (10 epochs, lr 0.003, λ 0.1) is benchmarks/ablation/ablation.json.
# Usage: bash benchmarks/investigation/run.sh [name ...]   (default: all; ~1 h on 2 CPU cores)
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
OUT=benchmarks/investigation
common=(--shots 16 --seeds 0,1,2 --overwrite true)
declare -A runs=(
  [kp1]="--methods lore --kp-weight 1"
  [kp10]="--methods lore --kp-weight 10"
  [lr10x]="--methods linear,vpt-deep,lore --lr 0.03"
  [epochs30]="--methods linear,vpt-deep,lore --epochs 30"
  [epochs30-no-kp]="--methods lore-no-kp --epochs 30"
)
order=(kp1 kp10 lr10x epochs30 epochs30-no-kp)
for name in "${@:-${order[@]}}"; do
  echo "== $name: ${runs[$name]}"
  start=$(date +%s)
  # shellcheck disable=SC2086
  $PY -m lorevit bench ablation "${common[@]}" ${runs[$name]} --output "$OUT/$name" --progress false
  echo "== $name took $(( $(date +%s) - start )) s"
done
