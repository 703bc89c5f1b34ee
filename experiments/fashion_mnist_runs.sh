#!/usr/bin/env bash
# Trains each GAN for a few minutes on the Fashion-MNIST IDX files (Debian's
# dataset-fashion-mnist package), evaluates it with the domain classifier, and writes a sample
# grid per GAN into docs/samples/.
#   python experiments/train_classifier.py --dataset=fashion_mnist \
#       --path=/usr/share/datasets/fashion-mnist --out=classifiers/fashion_mnist
#   bash experiments/fashion_mnist_runs.sh [WORKROOT]
# Step counts are sized for ~6 minutes of training each on a 2-core CPU; four evaluations of
# 2000 samples during training (the FID curve) and a final one of 10000 samples come on top.
set -euo pipefail
cd "$(dirname "$0")/.."
root=${1:-runs/fashion_mnist}
data=${FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}
clf=${CLASSIFIER:-classifiers/fashion_mnist}
mkdir -p docs/samples
for spec in "wgan_gp 400" "wgan 300" "dcgan 1000" "acgan 1200"; do
  set -- $spec
  gan=$1; steps=$2
  common=(--config=configs/$gan.py:fashion_mnist --config.dataset.path="$data"
          --config.num_steps=$steps --config.eval.classifier="$clf" --workdir="$root/$gan")
  start=$(date +%s)
  python main.py "${common[@]}" --config.log_every=50 --config.sample_every=100 \
    --config.checkpoint_every=500 --config.eval_every=$((steps / 4)) \
    --config.eval.num_samples=2000
  end=$(date +%s)
  python main.py "${common[@]}" --mode=sample --num_samples=100 --out="$root/$gan/samples.npz"
  cp "$root/$gan/samples.png" "docs/samples/${gan}_fashion_mnist.png"
  python experiments/plot_fid.py --workdir="$root/$gan" --out="docs/samples/${gan}_fashion_mnist_fid.png"
  echo "RESULT $gan steps=$steps wall_seconds=$((end - start))"
  echo "EVAL $gan $(python main.py "${common[@]}" --mode=eval --config.eval.num_samples=10000 | tail -1)"
done
