#!/usr/bin/env bash
# The same result from a folder as from the IDX files (issue 14, part 6): DCGAN trained on the
# Fashion-MNIST IDX files and on the same images written out as a PNG folder
# (experiments/idx_to_folder.py), each with two seeds, for STEPS iterations; then the domain
# FID of each (--mode=eval, 10,000 samples against the 60,000 training images, the domain
# classifier of experiments/train_classifier.py). The two seeds give the run-to-run noise.
# The folder gives the same images in another order (class by class), so the batches differ.
#
#   bash experiments/folder_vs_idx.sh [STEPS=600] [OUT=/tmp/folder_vs_idx]
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-600}
out=${2:-/tmp/folder_vs_idx}
idx=/usr/share/datasets/fashion-mnist   # apt-get install dataset-fashion-mnist
export TF_CPP_MIN_LOG_LEVEL=3
mkdir -p "$out"
[ -f "$out/classifier/meta.json" ] || python experiments/train_classifier.py \
    --dataset=fashion_mnist --path="$idx" --out="$out/classifier" > "$out/classifier.log" 2>&1
[ -d "$out/png/train" ] || python experiments/idx_to_folder.py --idx_dir="$idx" --out="$out/png" \
    > "$out/png.log" 2>&1
for source in idx folder; do
  path=$idx; [ "$source" = folder ] && path=$out/png/train
  for seed in 0 1; do
    run=$out/${source}_seed$seed
    common=(--config=configs/dcgan.py:fashion_mnist --workdir="$run"
            --config.dataset.path="$path" --config.seed="$seed"
            --config.eval.classifier="$out/classifier" --config.eval.reference_split=train)
    python main.py "${common[@]}" --config.num_steps="$steps" > "$run.train.log" 2>&1
    python main.py "${common[@]}" --mode=eval 2> "$run.eval.log" | tail -1 | python -c "
import json, sys
r = json.loads(sys.stdin.read())
print(json.dumps({'source': '$source', 'seed': $seed, 'steps': $steps,
                  **{k: r[k] for k in ('domain_fid', 'classifier_score', 'domain_kid') if k in r}}))"
  done
done | tee "$out/results.jsonl"
