"""The Flax DINOv2 against transformers' Dinov2Model and PyTorch's interpolation, dgm-eval's
resize against PIL, the weight files and their converter, and fd_dinov2 through --mode=eval.

The comparisons with PyTorch need torch and transformers (requirements-reference.txt; .ci/run
installs it, and under CI a missing one fails the test): transformers' Dinov2Model is built
with random weights, every parameter drawn (no zero bias, unit norm or unit layer scale that
would hide a mix-up), converted with `dinov2.from_torch` (or the tool, from the safetensors
that `save_pretrained` writes), and both see the same images. A small ViT runs in the default
suite; ViT-L/14 with facebook/dinov2-large's config is a slow test.
"""

import json
import os

from flax import traverse_util
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import reference_import, run_main, run_tool
from gan_jax import dinov2
from gan_jax.errors import ConfigError

# facebook/dinov2-large's config.json (transformers' names): ViT-L/14 at 518x518.
VIT_L14_CONFIG = dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                      mlp_ratio=4, hidden_act='gelu', hidden_dropout_prob=0.0,
                      attention_probs_dropout_prob=0.0, initializer_range=0.02,
                      layer_norm_eps=1e-6, image_size=518, patch_size=14, num_channels=3,
                      qkv_bias=True, layerscale_value=1.0, drop_path_rate=0.0,
                      use_swiglu_ffn=False)
SMALL_CONFIG = dict(VIT_L14_CONFIG, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                    image_size=56)                 # 4x4 patches of 14
SMALL_ARCH = dict(width=64, depth=2, heads=4, patch=14, grid=4, mlp_dim=256, eps=1e-6)


def _random_model(torch, transformers, config, seed=0):
  """transformers' Dinov2Model with every parameter random: weights N(0, 1 / fan_in), biases
  and tokens N(0, 0.1^2), norm scales in [0.5, 1.5), layer scales in [0.2, 0.8), position
  embeddings N(0, 0.5^2) (so that their resizing shows in the features)."""
  model = transformers.Dinov2Model(transformers.Dinov2Config(**config)).eval()
  gen = torch.Generator().manual_seed(seed)
  state = {}
  for key, value in model.state_dict().items():
    if key.endswith('position_embeddings'):
      state[key] = 0.5 * torch.randn(value.shape, generator=gen)
    elif key.endswith('lambda1'):
      state[key] = 0.2 + 0.6 * torch.rand(value.shape, generator=gen)
    elif 'norm' in key and key.endswith('weight'):
      state[key] = 0.5 + torch.rand(value.shape, generator=gen)
    elif key.endswith('bias') or key.endswith('token'):
      state[key] = 0.1 * torch.randn(value.shape, generator=gen)
    else:
      state[key] = torch.randn(value.shape, generator=gen) / value[0].numel() ** 0.5
  model.load_state_dict(state)
  return model


def _hub_interpolation(torch):
  """Dinov2Embeddings.interpolate_pos_encoding as the hub model resizes (dgm-eval's): a scale
  factor of (patches + 0.1) / grid rather than transformers' output size."""
  def interpolate(self, embeddings, height, width):
    pos = self.position_embeddings
    grid = int(round((pos.shape[1] - 1) ** 0.5))
    if embeddings.shape[1] - 1 == grid * grid and height == width:
      return pos
    h, w = height // self.config.patch_size, width // self.config.patch_size
    patches = pos[:, 1:].reshape(1, grid, grid, -1).permute(0, 3, 1, 2)
    patches = torch.nn.functional.interpolate(
        patches, scale_factor=((h + 0.1) / grid, (w + 0.1) / grid), mode='bicubic',
        align_corners=False)
    return torch.cat([pos[:, :1], patches.permute(0, 2, 3, 1).reshape(1, h * w, -1)], dim=1)
  return interpolate


def _compare(torch, model, variables, arch, sizes, offset, count=2, seed=0):
  """(largest |error|, largest |error| / largest |feature|) of the Flax features against the
  model's pooler output (the CLS token after the final layer norm) on normalised images."""
  rng = np.random.default_rng(seed)
  errors = []
  for hw in sizes:
    images = rng.normal(size=(count, *hw, 3)).astype(np.float32)
    with torch.no_grad():
      want = model(pixel_values=torch.from_numpy(images.transpose(0, 3, 1, 2))).pooler_output
    want = want.numpy()
    got = np.asarray(jax.jit(dinov2.Dinov2(**arch, interpolate_offset=offset).apply)(
        variables, jnp.asarray(images)))
    assert got.shape == (count, arch['width']) and want.std() > 0.3, hw
    errors.append((np.abs(got - want).max(), np.abs(got - want).max() / np.abs(want).max()))
  return np.max(errors, axis=0)


def test_position_embeddings_match_torch_interpolate():
  torch = reference_import('torch')
  rng = np.random.default_rng(0)
  for grid, h, w, offset in [(37, 16, 16, 0.1), (37, 16, 16, 0.0), (37, 40, 40, 0.1),
                             (4, 6, 5, 0.0), (4, 6, 5, 0.1), (4, 2, 3, 0.1)]:
    pos = rng.normal(size=(1, 1 + grid * grid, 8)).astype(np.float32)
    patches = torch.from_numpy(pos[:, 1:].reshape(1, grid, grid, 8)).permute(0, 3, 1, 2)
    size = (dict(scale_factor=((h + offset) / grid, (w + offset) / grid)) if offset
            else dict(size=(h, w)))
    want = torch.nn.functional.interpolate(patches, mode='bicubic', align_corners=False,
                                           **size).permute(0, 2, 3, 1).reshape(1, h * w, 8)
    got = np.asarray(dinov2.position_embeddings(jnp.asarray(pos), grid, (h * 14, w * 14), 14,
                                                offset))
    np.testing.assert_allclose(got[:, 1:], want.numpy(), atol=5e-6, rtol=0)
    assert np.array_equal(got[:, :1], pos[:, :1])
  # A square image of the trained grid (pixels past a whole patch are dropped) takes the
  # embeddings as they are; a non-square one is resized, to the same grid without an offset.
  pos = jnp.asarray(rng.normal(size=(1, 17, 8)), jnp.float32)
  assert all(dinov2.position_embeddings(pos, 4, (s, s), 14, 0.1) is pos for s in (56, 69))
  np.testing.assert_allclose(dinov2.position_embeddings(pos, 4, (56, 60), 14, 0.0), pos,
                             atol=1e-6)


def test_matches_transformers(tmp_path):
  """A small ViT (patch 14, 4x4 trained patches): the features of transformers' model at the
  trained size, smaller, larger and non-square; with the hub's resizing of the position
  embeddings too. Converted in-process and by the tool from save_pretrained's files."""
  torch = reference_import('torch')
  transformers = reference_import('transformers')
  model = _random_model(torch, transformers, SMALL_CONFIG)
  variables, arch = dinov2.from_torch({k: v.numpy() for k, v in model.state_dict().items()},
                                      heads=4)
  assert arch == SMALL_ARCH
  sizes = [(56, 56), (28, 28), (112, 112), (84, 70)]
  error, relative = _compare(torch, model, variables, arch, sizes, offset=0.0)
  assert error < 2e-5 and relative < 1e-5, (error, relative)
  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(transformers.models.dinov2.modeling_dinov2.Dinov2Embeddings,
                  'interpolate_pos_encoding', _hub_interpolation(torch))
    error, relative = _compare(torch, model, variables, arch, sizes[1:], offset=0.1)
  assert error < 2e-5 and relative < 1e-5, (error, relative)

  # The tool reads transformers' directory (config.json, model.safetensors) without torch.
  model.save_pretrained(tmp_path / 'hf')
  result = run_tool('convert_dinov2', f'--src={tmp_path / "hf"}',
                    f'--out={tmp_path / "small.npz"}')
  assert result.returncode == 0, result.stderr[-3000:]
  line = json.loads(result.stdout.strip().splitlines()[-1])
  assert line['arch'] == 'ViT-64/14' and line['parameters'] == sum(
      v.numel() for k, v in model.state_dict().items() if 'mask_token' not in k)
  loaded, loaded_arch, _ = dinov2.load(str(tmp_path / 'small.npz'))
  assert loaded_arch == arch
  flat = traverse_util.flatten_dict(variables)
  assert all(np.array_equal(v, flat[k]) for k, v in traverse_util.flatten_dict(loaded).items())
  # ... and the hub's state dict (a .pth in the hub's names), with torch.
  torch.save({k: torch.from_numpy(v) for k, v in _hub_state(variables).items()},
             tmp_path / 'hub.pth')
  result = run_tool('convert_dinov2', f'--src={tmp_path / "hub.pth"}', '--heads=4',
                    f'--out={tmp_path / "hub.npz"}')
  assert result.returncode == 0, result.stderr[-3000:]
  loaded, loaded_arch, _ = dinov2.load(str(tmp_path / 'hub.npz'))
  assert loaded_arch == arch
  assert all(np.array_equal(v, flat[k]) for k, v in traverse_util.flatten_dict(loaded).items())

  # The extractor's batched, jitted path is the module on the preprocessed images.
  images = np.random.default_rng(1).integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
  probs, features = dinov2.predictor(variables, arch, batch_size=2)(images)
  want = dinov2.Dinov2(**arch).apply(variables, dinov2.preprocess(jnp.asarray(images)))
  assert probs.shape == (5, 0)
  np.testing.assert_allclose(features, np.asarray(want), atol=1e-5, rtol=0)


@pytest.mark.slow
def test_matches_transformers_vit_l14():
  """ViT-L/14 with facebook/dinov2-large's config, random weights: the features at 518x518
  (the trained grid) and at 224x224 (the protocol's size: resized position embeddings), as
  transformers and as the hub resize them."""
  torch = reference_import('torch')
  transformers = reference_import('transformers')
  model = _random_model(torch, transformers, VIT_L14_CONFIG)
  variables, arch = dinov2.from_torch({k: v.numpy() for k, v in model.state_dict().items()},
                                      heads=16)
  assert arch == dinov2.VIT_L14 and dinov2.arch_name(arch) == 'ViT-L/14'
  native = _compare(torch, model, variables, arch, [(518, 518)], offset=0.0, count=1)
  resized = _compare(torch, model, variables, arch, [(224, 224)], offset=0.0)
  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(transformers.models.dinov2.modeling_dinov2.Dinov2Embeddings,
                  'interpolate_pos_encoding', _hub_interpolation(torch))
    hub = _compare(torch, model, variables, arch, [(224, 224)], offset=0.1)
  print(f'ViT-L/14 largest |error|, relative: 518: {native}, 224: {resized}, 224 hub: {hub}')
  for error, relative in (native, resized, hub):
    assert error < 5e-5 and relative < 1e-5, (native, resized, hub)


def _pil_reference(images):
  """dgm-eval's transform of uint8 images: PIL RGB, resized to 224 bicubically, [0, 1],
  ImageNet mean/std."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  out = []
  for image in images:
    pil = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).convert('RGB')
    out.append(np.asarray(pil.resize((224, 224), Image.BICUBIC), np.float32) / 255)
  return (np.stack(out) - np.asarray(dinov2.MEAN)) / np.asarray(dinov2.STD)


def test_preprocess_matches_pil():
  """Within PIL's rounding to 8 bits (after each of its two passes): about a grey level at most,
  a third of one on average; noise (every pixel an edge) and smooth images, up and down, RGB and
  grayscale; uint8 and [-1, 1] images alike."""
  rng = np.random.default_rng(0)
  preprocess = jax.jit(dinov2.preprocess)
  for shape in [(32, 32, 3), (28, 28, 1), (64, 48, 3), (48, 64, 3), (256, 256, 3),
                (224, 224, 3)]:
    h, w, c = shape
    y, x = np.meshgrid(np.linspace(0, 1, h), np.linspace(0, 1, w), indexing='ij')
    smooth = 127.5 + 127.5 * np.sin(6 * x + 3 * y)[..., None].repeat(c, -1)
    images = np.stack([rng.integers(0, 256, shape), smooth.round()]).astype(np.uint8)
    got = np.asarray(preprocess(images))
    grey_levels = np.abs(got - _pil_reference(images)) * np.asarray(dinov2.STD) * 255
    assert got.shape == (2, 224, 224, 3)
    assert grey_levels.max() < 1.2 and grey_levels.mean() < 0.4, (shape, grey_levels.max())
    signed = images.astype(np.float32) / 127.5 - 1
    np.testing.assert_allclose(np.asarray(preprocess(signed)), got, atol=1e-5)


def _hub_state(variables):
  """Flax variables -> the hub model's state dict (names, [out, in] layouts, a mask token)."""
  state = {}
  for (*modules, leaf), value in traverse_util.flatten_dict(variables['params']).items():
    value = np.asarray(value)
    if modules == ['patch_embed']:
      state[f'patch_embed.proj.{"weight" if leaf == "kernel" else "bias"}'] = (
          value.transpose(3, 2, 0, 1) if leaf == 'kernel' else value)
    elif not modules:
      state[leaf] = value
    else:
      name = '.'.join(m.replace('blocks_', 'blocks.') for m in modules)
      torch_leaf = {'kernel': 'weight', 'scale': 'weight'}.get(leaf, leaf)
      state[f'{name}.{torch_leaf}'] = value.T if leaf == 'kernel' else value
  state['mask_token'] = np.zeros((1, state['cls_token'].shape[-1]), np.float32)
  return state


def _random_variables(arch, seed=0):
  patch = arch['patch']
  return jax.device_get(dinov2.Dinov2(**arch).init(
      jax.random.PRNGKey(seed), jnp.zeros((1, patch, patch, 3), jnp.float32)))


def test_from_torch_reads_the_hub_names():
  variables = _random_variables(SMALL_ARCH)
  converted, arch = dinov2.from_torch(_hub_state(variables), heads=4)
  assert arch == SMALL_ARCH
  got, want = (traverse_util.flatten_dict(v) for v in (converted, variables))
  assert sorted(got) == sorted(want) and all(np.array_equal(got[k], want[k]) for k in want)


def test_from_torch_names_what_does_not_fit():
  state = _hub_state(_random_variables(SMALL_ARCH))
  with pytest.raises(ValueError, match='unexpected entry'):
    dinov2.from_torch({**state, 'register_tokens': np.zeros((1, 4, 64))})
  with pytest.raises(ValueError, match='unexpected entry'):
    dinov2.from_torch({**state, 'blocks.0.mlp.w12.weight': np.zeros((512, 64))})
  with pytest.raises(ValueError, match='not a DINOv2 state dict'):
    dinov2.from_torch({k: v for k, v in state.items() if k != 'cls_token'})
  with pytest.raises(ValueError, match='missing'):
    dinov2.from_torch({k: v for k, v in state.items() if k != 'blocks.1.ls2.gamma'})
  with pytest.raises(ValueError, match='only'):
    dinov2.from_torch({'encoder.layer.0.attention.attention.query.weight': np.zeros((4, 4))})


def test_save_load_round_trip_and_refusals(tmp_path):
  variables = _random_variables(SMALL_ARCH)
  path = str(tmp_path / 'dinov2.npz')
  dinov2.save(path, variables, SMALL_ARCH)
  loaded, arch, digest = dinov2.load(path)
  got, want = (traverse_util.flatten_dict(v) for v in (loaded, variables))
  assert arch == SMALL_ARCH and len(digest) == 10
  assert sorted(got) == sorted(want) and all(np.array_equal(got[k], want[k]) for k in want)
  with pytest.raises(ConfigError, match='does not exist'):
    dinov2.load(str(tmp_path / 'none.npz'))
  (tmp_path / 'model.safetensors').write_bytes(b'x')
  with pytest.raises(ConfigError, match='convert it first'):
    dinov2.load(str(tmp_path / 'model.safetensors'))
  np.savez(tmp_path / 'bad.npz', arch=np.array(json.dumps(SMALL_ARCH)),
           **{'params/norm/scale': np.zeros(3)})
  with pytest.raises(ConfigError, match='cannot be used as DINOv2 weights'):
    dinov2.load(str(tmp_path / 'bad.npz'))


def test_convert_tool_refuses_with_one_line(tmp_path):
  result = run_tool('convert_dinov2', f'--src={tmp_path / "none"}', f'--out={tmp_path / "o.npz"}')
  assert result.returncode == 2 and 'does not exist' in result.stderr
  (tmp_path / 'giant').mkdir()
  (tmp_path / 'giant' / 'config.json').write_text(json.dumps(
      {'model_type': 'dinov2', 'use_swiglu_ffn': True}))
  (tmp_path / 'giant' / 'model.safetensors').write_bytes(b'\0' * 8 + b'{}')
  result = run_tool('convert_dinov2', f'--src={tmp_path / "giant"}',
                    f'--out={tmp_path / "o.npz"}')
  assert result.returncode == 2 and 'SwiGLU' in result.stderr


@pytest.mark.slow   # several processes (main.py runs)
def test_eval_mode_with_dinov2_weights(tmp_path, monkeypatch):
  """--mode=eval with DINOv2 weights alone (a tiny random ViT: the preprocessing, metric
  plumbing and names are what is tested; the port is checked above)."""
  monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path / 'cache'))
  arch = dict(width=32, depth=1, heads=2, patch=14, grid=2, mlp_dim=64, eps=1e-6)
  variables = jax.tree.map(lambda x: x + 0.1 * np.random.default_rng(0).normal(size=x.shape),
                           _random_variables(arch))
  dinov2.save(str(tmp_path / 'dinov2.npz'), variables, arch)
  workdir = tmp_path / 'run'
  assert run_main('--config=configs/wgan_gp.py:digits,runlocal,mlp', f'--workdir={workdir}',
                  '--config.num_steps=1').returncode == 0
  small = dict(dinov2_weights=str(tmp_path / 'dinov2.npz'), num_samples=10,
               reference_samples=12, kid_subsets=2, kid_subset_size=5, pr_samples=8)
  result = run_main(f'--workdir={workdir}', '--mode=eval',
                    *[f'--config.eval.{k}={v}' for k, v in small.items()])
  assert result.returncode == 0, result.stderr[-3000:]
  scores = json.loads(result.stdout.strip().splitlines()[-1])
  info = scores['extractors']['dinov2']
  assert info['arch'] == 'ViT-32/14' and os.path.exists(info['stats'])
  assert scores['fd_dinov2'] > 0 and np.isfinite(scores['dinov2_kid'])
  assert 0 <= scores['dinov2_precision'] <= 1 and 0 <= scores['dinov2_recall'] <= 1
  assert not {'fid', 'inception_score', 'domain_fid', 'dinov2_score'} & set(scores)
  # The default best metric is fd_dinov2; one no configured extractor computes is refused.
  wrong = run_main(f'--workdir={workdir}', '--mode=eval', '--config.eval.best_metric=fid',
                   *[f'--config.eval.{k}={v}' for k, v in small.items()])
  assert wrong.returncode == 2 and 'not computed by the configured extractors' in wrong.stderr
