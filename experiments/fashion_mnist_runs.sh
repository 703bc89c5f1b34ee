#!/usr/bin/env bash
# Trains each GAN for a few minutes on the Fashion-MNIST IDX files (Debian's
# dataset-fashion-mnist package) and writes a sample grid per GAN into docs/samples/.
#   bash experiments/fashion_mnist_runs.sh [WORKROOT]
# Step counts are sized for ~6 minutes each on a 2-core CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
root=${1:-runs/fashion_mnist}
data=${FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}
mkdir -p docs/samples
for spec in "wgan_gp 400" "wgan 300" "dcgan 1000" "acgan 1200"; do
  set -- $spec
  gan=$1; steps=$2
  start=$(date +%s)
  python main.py --config=configs/$gan.py:fashion_mnist --config.dataset.path="$data" \
    --config.num_steps=$steps --config.log_every=50 --config.sample_every=100 \
    --config.checkpoint_every=500 --workdir="$root/$gan"
  end=$(date +%s)
  python main.py --config=configs/$gan.py:fashion_mnist --config.dataset.path="$data" \
    --workdir="$root/$gan" --mode=sample --num_samples=100 --out="$root/$gan/samples.npz"
  cp "$root/$gan/samples.png" "docs/samples/${gan}_fashion_mnist.png"
  echo "RESULT $gan steps=$steps wall_seconds=$((end - start))"
done
