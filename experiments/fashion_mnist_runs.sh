#!/usr/bin/env bash
# Trains each GAN for a fixed wall-clock budget on the Fashion-MNIST IDX files (Debian's
# dataset-fashion-mnist package), evaluates the last checkpoint with the domain classifier,
# and writes a sample grid and an FID curve per GAN into docs/samples/.
#   python -m gan_jax.tools.train_classifier --dataset=fashion_mnist \
#       --path=/usr/share/datasets/fashion-mnist --out=classifiers/fashion_mnist
#   bash experiments/fashion_mnist_runs.sh [MINUTES] [WORKROOT]
# The budget ends with SIGTERM (`timeout`), which main.py treats as a preemption: it stops
# after the current call with a checkpoint. It covers start-up, compilation and the
# evaluations of 2000 samples every `eval_every` steps (the FID curve). Running the script
# again with a larger MINUTES on the same WORKROOT resumes each run for the difference.
set -euo pipefail
cd "$(dirname "$0")/.."
minutes=${1:-10}
root=${2:-runs/fashion_mnist}
data=${FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}
clf=${CLASSIFIER:-classifiers/fashion_mnist}
mkdir -p docs/samples
# eval_every: about one evaluation per 100 s of training on a 2-core CPU.
for spec in "wgan_gp 100" "wgan 100" "dcgan 250" "acgan 300"; do
  set -- $spec
  gan=$1; every=$2
  common=(--config=configs/$gan.py:fashion_mnist --config.dataset.path="$data"
          --config.num_steps=1000000 --config.eval.classifier="$clf" --workdir="$root/$gan")
  spent=0
  [[ -f "$root/$gan/seconds" ]] && spent=$(cat "$root/$gan/seconds")
  left=$((minutes * 60 - spent))
  if (( left > 0 )); then
    start=$(date +%s)
    timeout --preserve-status -s TERM "$left" python main.py "${common[@]}" \
      --config.log_every=50 --config.sample_every=500 --config.checkpoint_every=1000 \
      --config.eval_every="$every" --config.eval.num_samples=2000
    echo $((spent + $(date +%s) - start)) > "$root/$gan/seconds"
  fi
  python main.py "${common[@]}" --mode=sample --num_samples=100 --out="$root/$gan/samples.npz"
  cp "$root/$gan/samples.png" "docs/samples/${gan}_fashion_mnist_${minutes}min.png"
  python -m gan_jax.tools.plot_fid --workdir="$root/$gan" \
    --out="docs/samples/${gan}_fashion_mnist_${minutes}min_fid.png" ||
    echo "no FID curve for $gan: no evaluation within the budget"
  echo "RESULT $gan minutes=$minutes wall_seconds=$(cat "$root/$gan/seconds")"
  echo "EVAL $gan $(python main.py "${common[@]}" --mode=eval --config.eval.num_samples=10000 | tail -1)"
done
