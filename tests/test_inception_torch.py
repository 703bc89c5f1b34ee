"""gan_jax/inception.py computes what pytorch-fid 0.3.0's FID Inception computes:
tests/inception_torch.py (that network written in plain torch from pytorch-fid's and
torchvision's code: no torchvision or pytorch-fid needed, so it runs in CI) with random weights,
converted by gan_jax/tools/convert_inception.py from a .pth in pytorch-fid's names, on the same
images.

Checked: every FID block on its own (the average pools that leave the padding out, Mixed_7c's
max pool, the grid reductions), then the whole network through `inception.predict` on images of
sizes other than 299 (32x32 upsampled, 331x400 downsampled, non-square so that a swapped axis
would show) in [0, 1]: the pool3 features and the log of the probabilities (the logits up to
their logsumexp: everything the IS sees). Float32 throughout. Tolerances: blocks (outputs of
std ~0.9, up to ~11) within atol 2e-5 + rtol 1e-5, measured at most 8e-6; pool3 features (std
~3, up to ~32) and log-probabilities (the top classes' within a few units of each other) within
atol 1e-4, measured at most 1.2e-5 and 3e-5. About 35 s on 2 CPU cores.

tests/test_inception.py checks the reference, and ours, against the pytorch-fid package itself
(requirements-inception-test.txt; CI installs it).
"""

import json

from flax import traverse_util
import numpy as np
import pytest

from conftest import reference_import, run_tool
from gan_jax import inception

torch = reference_import('torch')   # CI installs it: missing there, the run fails
import inception_torch  # pylint: disable=g-import-not-at-top,wrong-import-position


@pytest.fixture(scope='module')
def reference():
  """(torch network in eval mode with random weights, those weights as Flax variables)."""
  net = inception_torch.FIDInceptionV3().eval()
  state = inception_torch.random_state_dict(net)
  net.load_state_dict(state)
  return net, inception.from_torch({k: v.numpy() for k, v in state.items()})


def _nchw(a):
  return torch.from_numpy(np.ascontiguousarray(np.asarray(a, np.float32).transpose(0, 3, 1, 2)))


@pytest.mark.parametrize('name, module, channels, side', [
    ('Mixed_5b', inception.InceptionA(32), 192, 7),
    ('Mixed_6a', inception.InceptionB(), 288, 9),
    ('Mixed_6e', inception.InceptionC(192), 768, 6),
    ('Mixed_7a', inception.InceptionD(), 768, 9),
    ('Mixed_7b', inception.InceptionE(), 1280, 5),
    ('Mixed_7c', inception.InceptionE(max_pool=True), 2048, 5),
])
def test_blocks_match(reference, name, module, channels, side):
  """One block on a small map (its borders, where the FID pools differ, are most of it); the
  input has negative values, which a max pool's padding must not win over."""
  net, variables = reference
  x = np.random.default_rng(1).normal(size=(2, side, side + 1, channels)).astype(np.float32)
  got = module.apply({c: variables[c][name] for c in ('params', 'batch_stats')}, x)
  with torch.no_grad():
    want = getattr(net, name)(_nchw(x)).numpy().transpose(0, 2, 3, 1)
  assert got.shape == want.shape and want.std() > 0.1
  np.testing.assert_allclose(got, want, atol=2e-5, rtol=1e-5)


def test_network_matches_through_the_converter(reference, tmp_path):
  net, variables = reference
  # The converter reads a .pth in pytorch-fid's names (as its release file) and writes the npz.
  state = net.state_dict()
  torch.save(state, tmp_path / 'random_inception.pth')
  result = run_tool('convert_inception', f'--pth={tmp_path / "random_inception.pth"}',
                    f'--out={tmp_path / "random_inception.npz"}')
  assert result.returncode == 0, result.stderr[-3000:]
  line = json.loads(result.stdout.strip().splitlines()[-1])
  assert line['parameters'] == sum(v.numel() for k, v in state.items()
                                   if not k.endswith('num_batches_tracked'))
  loaded, digest = inception.load(line['out'])
  assert digest == line['sha1_10']
  want_flat = traverse_util.flatten_dict(variables)
  got_flat = traverse_util.flatten_dict(loaded)
  assert sorted(got_flat) == sorted(want_flat)
  assert all(np.array_equal(got_flat[k], want_flat[k]) for k in want_flat)

  rng = np.random.default_rng(0)
  for shape in [(2, 32, 32, 3), (1, 331, 400, 3)]:
    images = rng.uniform(size=shape).astype(np.float32)
    probs, features = inception.predict(loaded, images, batch_size=shape[0])
    with torch.no_grad():
      want, logits = net(_nchw(images))
      want_log_probs = torch.log_softmax(logits, 1).numpy()
    want = want.numpy()
    assert features.shape == (shape[0], inception.FEATURE_DIM) and want.std() > 0.1
    np.testing.assert_allclose(features, want, atol=1e-4, rtol=0, err_msg=str(shape))
    # The softmax is spread (log-probabilities of the top classes within a few units of each
    # other), so the log-probabilities check the logits up to their common shift.
    assert np.sort(want_log_probs, 1)[:, -2].min() > -10
    np.testing.assert_allclose(np.log(probs), want_log_probs, atol=1e-4, rtol=0,
                               err_msg=str(shape))
