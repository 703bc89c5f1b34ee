#!/usr/bin/env bash
# The speed table of docs/speed.md on other kinds of x86 CPU, emulated on this one: every
# library the comparison uses is held to an older instruction set, and experiments/benchmark.py
# times gan_jax (float32, and the bfloat16 products of model.conv_impl mkl and bf16) against
# PyTorch (eager float32 beside the float32 runs, eager under bfloat16 autocast beside the
# bfloat16 ones) with the GEMM peak of each, under each instruction set in turn (under avx2 the
# bfloat16 runs leave PyTorch out: its bfloat16 there is emulated in software). One JSON line
# per run goes to OUT/results.jsonl.
#
#   bash experiments/cpu_isa_table.sh [OUT=/tmp/cpu_isa] [ISAS="native avx512_bf16 avx2"] \
#       [MODELS="wgan_gp dcgan"] [IMPLS="hybrid mkl bf16"]
#
# The instruction sets (each for XLA's code generation, oneMKL (ours and PyTorch's), PyTorch's
# ATen kernels and its oneDNN convolutions):
#   native       what the CPU has (on this project's Xeon: AVX-512 with AMX);
#   avx512_bf16  AVX-512 with AVX512-BF16 and no AMX (the kind of an AMD EPYC Zen 4);
#   avx2         AVX2 and FMA only (the kind of an AMD EPYC Zen 3, or an older Intel).
# An emulation holds the instructions back, not the caches, clocks or memory of another CPU,
# and on an AMD CPU oneMKL chooses its own kernels: the figures say which instructions pay,
# not what a real EPYC does.
#
# DCGAN's training loop needs 32x32x3 images: DCGAN_DATA (default /tmp/rgb32.npz) is written
# with random pixels (10,000 images) when it is missing. WGAN-GP's runs on the Fashion-MNIST IDX
# files (apt-get install dataset-fashion-mnist). Nothing else may run while it times.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-/tmp/cpu_isa}
isas=${2:-native avx512_bf16 avx2}
models=${3:-wgan_gp dcgan}
impls=${4:-hybrid mkl bf16}
idx=/usr/share/datasets/fashion-mnist
rgb=${DCGAN_DATA:-/tmp/rgb32.npz}
export TF_CPP_MIN_LOG_LEVEL=3
mkdir -p "$out"
[ -f "$rgb" ] || python -c "import numpy as np; np.savez('$rgb', images=np.random.default_rng(0).integers(0, 256, (10000, 32, 32, 3), dtype=np.uint8))"

isa_env() {  # the environment that holds every library to instruction set $1
  case $1 in
    native) echo "";;
    avx512_bf16) echo "XLA_FLAGS=--xla_cpu_max_isa=AVX512_BF16 MKL_ENABLE_INSTRUCTIONS=AVX512_E3 \
ONEDNN_MAX_CPU_ISA=AVX512_CORE_BF16 ATEN_CPU_CAPABILITY=avx512";;
    avx2) echo "XLA_FLAGS=--xla_cpu_max_isa=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 \
ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2";;
    *) echo "unknown instruction set $1" >&2; exit 2;;
  esac
}

for isa in $isas; do
  env_vars=$(isa_env "$isa")
  for model in $models; do
    case $model in
      wgan_gp) args=(--config=configs/wgan_gp.py:mnist --steps=30 --config.dataset.path="$idx");;
      dcgan) args=(--config=configs/dcgan.py:cifar10 --steps=60 --config.dataset.path="$rgb");;
      *) echo "unknown model $model" >&2; exit 2;;
    esac
    for impl in $impls; do
      torch_flags=(--torch)
      [ "$impl" != hybrid ] && torch_flags=(--torch --torch_autocast)
      # PyTorch's bfloat16 without AVX-512 is emulated in software: 28 s a WGAN-GP iteration.
      [ "$impl" != hybrid ] && [ "$isa" = avx2 ] && torch_flags=()
      log=$out/${isa}_${model}_${impl}
      echo "$isa $model $impl" >&2
      env $env_vars python experiments/benchmark.py "${args[@]}" --config.batch_size=64 \
          --config.model.conv_impl="$impl" --loop --gemm_peak "${torch_flags[@]}" \
          > "$log.json" 2> "$log.log"
      tail -1 "$log.json" | python -c "import json, sys; r = json.loads(sys.stdin.read()); \
r.update(isa='$isa', model='$model', conv_impl='$impl'); print(json.dumps(r))" >> "$out/results.jsonl"
    done
  done
done
