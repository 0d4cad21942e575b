#!/usr/bin/env bash
# The paper's Table 7 setting on one GPU (issue 24): CLIP ViT-B/16 at 224 px, batch 64, fp32 and bf16,
# torch.compile off and on; the plain ViT (B-B), B-B + VPT-deep, LORE and LORE without the shared-prompt
# shortcut, side by side in one run -> $OUT/inference.{json,md}. About 3-5 minutes on one recent GPU
# (most of it compiling). Speed does not depend on the weights: WEIGHTS=random needs no download
# (WEIGHTS=hub with the name's .openai tag fetches OpenAI's).
#
#   bash benchmarks/gpu/table7.sh                 # on a machine with a GPU
#   SMOKE=1 bash benchmarks/gpu/table7.sh         # CPU smoke version (tiny random ViT; what CI runs)
set -euo pipefail
PY=${PY:-python}
OUT=${OUT:-benchmarks/gpu}
METHODS=${METHODS:-linear,vpt-deep,lore,lore-unshared}
if [ "${SMOKE:-0}" = 1 ]; then
  exec "$PY" -m lorevit bench inference --device cpu --backbone vit_tiny_patch16_224 --weights random \
    --backbone-kwargs '{patch_size: 8, depth: 2, embed_dim: 32, num_heads: 2}' --img-size 32 --batch-sizes 2 \
    --dtype fp32,bf16 --compile "${COMPILE:-off}" --methods "$METHODS" --repeats 1 --warmup 1 --min-time 0 \
    --output "$OUT"
fi
exec "$PY" -m lorevit bench inference --device "${DEVICE:-cuda}" \
  --backbone "${BACKBONE:-vit_base_patch16_clip_quickgelu_224}" --weights "${WEIGHTS:-random}" \
  --img-size 224 --batch-sizes "${BATCH_SIZES:-64}" --dtype fp32,bf16 --compile "${COMPILE:-off,on}" \
  --methods "$METHODS" --repeats "${REPEATS:-10}" --warmup 3 --min-time 0.5 --output "$OUT"
