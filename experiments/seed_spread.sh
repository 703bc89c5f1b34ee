#!/usr/bin/env bash
# How much does the seed matter: DCGAN and WGAN-GP on the Fashion-MNIST IDX
# files, SEEDS seeds each trained at once (--config.num_seeds, one compiled call for all), for
# STEPS iterations; then --mode=eval, which scores every member (SAMPLES samples each against the
# 60,000 training images, with the domain classifier of gan_jax/tools/train_classifier.py) and
# prints each score's mean, standard deviation and per-member values.
#
#   bash experiments/seed_spread.sh [STEPS=400] [SEEDS=5] [SAMPLES=5000] [OUT=/tmp/seed_spread] [OVERRIDES]
#
# OVERRIDES: config flags for both GANs' runs, e.g. "--config.model.conv_impl=mkl" (docs/speed.md:
# its bfloat16 products against float32); the runs are then named after them. GANS="dcgan" runs
# one of the two.
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-400}
seeds=${2:-5}
samples=${3:-5000}
out=${4:-/tmp/seed_spread}
overrides=${5:-}
tag=$(echo "$overrides" | tr -c 'A-Za-z0-9_=\n' '_' | sed 's/^_*//; s/config_//g')
idx=/usr/share/datasets/fashion-mnist   # apt-get install dataset-fashion-mnist
export TF_CPP_MIN_LOG_LEVEL=3
mkdir -p "$out"
[ -f "$out/classifier/meta.json" ] || python -m gan_jax.tools.train_classifier \
    --dataset=fashion_mnist --path="$idx" --out="$out/classifier" > "$out/classifier.log" 2>&1
for gan in ${GANS:-dcgan wgan_gp}; do
  run=$out/$gan${tag:+_$tag}
  common=(--config=configs/$gan.py:fashion_mnist --workdir="$run" --config.dataset.path="$idx"
          --config.num_seeds="$seeds" --config.eval.classifier="$out/classifier"
          --config.eval.reference_split=train --config.eval.num_samples="$samples" $overrides)
  start=$(date +%s)
  python main.py "${common[@]}" --config.num_steps="$steps" > "$run.train.log" 2>&1
  seconds=$(( $(date +%s) - start ))
  python main.py "${common[@]}" --mode=eval 2> "$run.eval.log" | tail -1 | python -c "
import json, sys
r = json.loads(sys.stdin.read())
keys = ('domain_fid', 'classifier_score')
print(json.dumps({'gan': '$gan', 'overrides': '$overrides', 'steps': $steps, 'seeds': $seeds, 'samples': $samples,
                  'train_seconds': $seconds,
                  **{k + s: r[k + s] for k in keys for s in ('', '_seed_std', '_members')}}))"
done | tee -a "$out/results.jsonl"
