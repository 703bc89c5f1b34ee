#!/usr/bin/env bash
# gan_jax against PyTorch on one GPU, batch 64: DCGAN CIFAR-10 and WGAN-GP's MNIST model.
# For each: gan_jax's bare compiled step and its training loop (benchmark.py --loop: default
# intervals, auto steps_per_call), then the same models in PyTorch eager and under
# torch.compile. One JSON line per measurement.
#
#   bash experiments/gpu_benchmark.sh [OUT_DIR]
#
# Needs requirements.txt with jax[cuda12|13]==0.10.2, and torch. The loop writes TensorBoard
# events through CLU, which needs TensorFlow (the CPU wheel is enough).
#
# No data is downloaded: a random .npz of each dataset's shape stands in for it.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-/tmp/gpu_benchmark}
mkdir -p "$out"
python - "$out" <<'PY'
import sys, numpy as np
rng = np.random.default_rng(0)
for name, shape in (('cifar10', (32, 32, 3)), ('mnist', (28, 28, 1))):
  np.savez(f'{sys.argv[1]}/{name}.npz', images=rng.integers(0, 256, (10000, *shape), np.uint8),
           labels=rng.integers(0, 10, 10000))
PY
python -c "import jax; print('jax', jax.__version__, jax.devices())"
python -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(0))"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
for spec in "configs/dcgan.py:cifar10 cifar10 200" "configs/wgan_gp.py:mnist mnist 100"; do
  set -- $spec
  common=(--config="$1" --config.batch_size=64 --config.dataset.path="$out/$2.npz")
  python experiments/benchmark.py "${common[@]}" --steps="$3" --loop
  python experiments/benchmark.py "${common[@]}" --steps="$3" --torch --torch_device=cuda
  python experiments/benchmark.py "${common[@]}" --steps="$3" --torch --torch_device=cuda \
      --torch_compile
done 2>&1 | grep -E '^\{|^jax|^torch|Error' | tee "$out/results.jsonl"
