"""What an accelerator can do at most, per JAX device: peak matrix FLOP/s, HBM and its bandwidth.

Utilisation (`train/mfu`) and the roofline bound of `--mode=compile` divide by these. Numbers are
the vendors' datasheet figures (dense, no sparsity), per JAX device: a TPU v4 or v5p chip is one
device (megacore), a v2 or v3 chip two (one per TensorCore). On a TPU, float32 matrix products at
JAX's default precision are single bf16 passes of the MXU, so the bf16 peak applies to both
dtypes; on an Ampere or later GPU they are TF32 tensor-core products, so the TF32 peak applies.
"""

import dataclasses
from typing import Optional

TERA = 1e12
GIB = 2 ** 30


@dataclasses.dataclass(frozen=True)
class Chip:
  bf16_flops: float        # peak FLOP/s per device, bfloat16 matrix products
  f32_flops: float         # peak FLOP/s per device, float32 matrix products at default precision
  hbm_bytes: float         # HBM per device (the nominal size; a TPU compile reports what is usable)
  hbm_bandwidth: float     # bytes/s per device
  source: str


_CLOUD_TPU = 'https://cloud.google.com/tpu/docs/'
# device_kind as JAX reports it (a GPU's is matched by its start) -> its peaks.
CHIPS = {
    'TPU v2': Chip(22.5 * TERA, 22.5 * TERA, 8 * GIB, 350e9, _CLOUD_TPU + 'v2'),
    'TPU v3': Chip(61.5 * TERA, 61.5 * TERA, 16 * GIB, 450e9, _CLOUD_TPU + 'v3'),
    'TPU v4': Chip(275 * TERA, 275 * TERA, 32 * GIB, 1200e9, _CLOUD_TPU + 'v4'),
    'TPU v5 lite': Chip(197 * TERA, 197 * TERA, 16e9, 819e9, _CLOUD_TPU + 'v5e'),
    'TPU v5': Chip(459 * TERA, 459 * TERA, 95e9, 2765e9, _CLOUD_TPU + 'v5p'),
    'TPU v6 lite': Chip(918 * TERA, 918 * TERA, 32e9, 1638e9, _CLOUD_TPU + 'v6e'),
    'NVIDIA H200': Chip(989 * TERA, 494.7 * TERA, 141e9, 4.8e12,
                        'https://www.nvidia.com/en-us/data-center/h200/'),
    'NVIDIA H100 80GB HBM3': Chip(989 * TERA, 494.7 * TERA, 80e9, 3.35e12,
                                  'https://www.nvidia.com/en-us/data-center/h100/ (SXM)'),
    'NVIDIA H100 PCIe': Chip(756 * TERA, 378 * TERA, 80e9, 2.0e12,
                             'https://www.nvidia.com/en-us/data-center/h100/ (PCIe)'),
    'NVIDIA A100-SXM4-80GB': Chip(312 * TERA, 156 * TERA, 80e9, 2.039e12,
                                  'https://www.nvidia.com/en-us/data-center/a100/'),
    'NVIDIA A100-SXM4-40GB': Chip(312 * TERA, 156 * TERA, 40e9, 1.555e12,
                                  'https://www.nvidia.com/en-us/data-center/a100/'),
    'NVIDIA L4': Chip(121 * TERA, 60 * TERA, 24e9, 300e9,
                      'https://www.nvidia.com/en-us/data-center/l4/'),
}


def chip(device_kind: str) -> Optional[Chip]:
  """The peaks of a JAX device_kind, or None where they are not known (a CPU, another GPU)."""
  if device_kind in CHIPS:
    return CHIPS[device_kind]
  matches = [k for k in CHIPS if k.startswith('NVIDIA') and device_kind.startswith(k)]
  return CHIPS[max(matches, key=len)] if matches else None


def peak_flops(device_kind: str, dtype: str) -> Optional[float]:
  """Peak matrix FLOP/s of one device of `device_kind` for config.dtype `dtype`, or None."""
  c = chip(device_kind)
  if c is None:
    return None
  return c.bf16_flops if dtype == 'bfloat16' else c.f32_flops
