"""The Flax InceptionV3 against pytorch-fid's network itself, and the weight file handling.

tests/test_inception_torch.py compares the Flax network with tests/inception_torch.py,
pytorch-fid's network written in plain torch. The comparison here is with the real package: it
needs torch (requirements-reference.txt), torchvision and pytorch-fid
(requirements-inception-test.txt, installed with --no-deps, in this Python or in the venv
.venv-inception, where the test then runs; CI makes that venv, and it skips elsewhere where they
are missing). PyPI's torchvision is a CUDA build: over torch's CPU build it imports through
tests/conftest.py's import_torchvision (its detection operators stay unavailable; the Inception
blocks are plain torch modules). Kept out of the main environment, since there its failing
import would also fail transformers' (tests/test_dinov2.py). pytorch-fid's network is built
with the reference's random weights (its download replaced by that state dict), converted with
`inception.from_torch`; the three networks see the same images.
"""

import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT, pytorch_fid_python, reference_import
from gan_jax import inception
from gan_jax.errors import ConfigError


def test_matches_pytorch_fid(monkeypatch):
  """pytorch-fid's own network (its download replaced by random weights in its names) against
  ours and against tests/inception_torch.py, the plain-torch reference that CI compares with
  (tests/test_inception_torch.py): a strict load of the reference's state dict checks its names
  and shapes, and the two torch networks agree (bit for bit with torch 2.13 on CPU, on 32x32
  and 331x400 inputs; asserted within 1e-5)."""
  python = pytorch_fid_python()
  if python not in (None, sys.executable):  # .venv-inception: the test runs there
    run = subprocess.run([python, '-m', 'pytest', '-q', '-n', '0', '-p', 'no:cacheprovider',
                          f'{os.path.abspath(__file__)}::test_matches_pytorch_fid'],
                         cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0 and '1 passed' in run.stdout, run.stdout[-4000:] + run.stderr[-2000:]
    return
  torch = reference_import('torch')
  reference_import('torchvision', 'requirements-inception-test.txt')
  fid_inception = reference_import('pytorch_fid.inception', 'requirements-inception-test.txt')
  import inception_torch  # pylint: disable=g-import-not-at-top
  ref = inception_torch.FIDInceptionV3().eval()
  state = inception_torch.random_state_dict(ref)
  ref.load_state_dict(state)
  monkeypatch.setattr(fid_inception, 'load_state_dict_from_url', lambda *a, **k: state)
  net = fid_inception.InceptionV3([3]).eval()       # resize to 299, [0, 1] -> [-1, 1]
  images = np.random.default_rng(0).uniform(size=(4, 32, 32, 3)).astype(np.float32)
  with torch.no_grad():
    nchw = torch.from_numpy(images.transpose(0, 3, 1, 2))
    want = net(nchw)[0][:, :, 0, 0]
    want_logits = torch.nn.functional.linear(want, state['fc.weight'], state['fc.bias'])
    ref_features, ref_logits = ref(nchw)
  np.testing.assert_allclose(ref_features.numpy(), want.numpy(), atol=1e-5, rtol=0)
  np.testing.assert_allclose(ref_logits.numpy(), want_logits.numpy(), atol=1e-5, rtol=0)
  variables = inception.from_torch({k: v.numpy() for k, v in state.items()})
  probs, features = inception.predict(variables, images, batch_size=4)
  want, want_logits = want.numpy(), want_logits.numpy()
  assert features.shape == (4, 2048) and want.std() > 0.1     # activations did not vanish
  np.testing.assert_allclose(features, want, atol=1e-4, rtol=0)
  np.testing.assert_allclose(probs, np.asarray(torch.softmax(torch.from_numpy(want_logits), 1)),
                             atol=1e-6, rtol=1e-4)


def _random_variables(seed=0):
  rng = np.random.default_rng(seed)
  return {k: rng.normal(size=s).astype(np.float32) * 0.01
          for k, s in inception._expected_shapes().items()}   # pylint: disable=protected-access


def test_from_torch_names_what_does_not_fit():
  with pytest.raises(ValueError, match='unexpected entry'):
    inception.from_torch({'AuxLogits.fc.weight': np.zeros((1008, 768))})
  with pytest.raises(ValueError, match='missing'):
    inception.from_torch({'fc.weight': np.zeros((1008, 2048)), 'fc.bias': np.zeros(1008)})


def test_load_refuses_bad_files(tmp_path):
  with pytest.raises(ConfigError, match='does not exist'):
    inception.load(str(tmp_path / 'none.npz'))
  pth = tmp_path / 'pt_inception.pth'
  pth.write_bytes(b'x')
  with pytest.raises(ConfigError, match='convert it first'):
    inception.load(str(pth))
  bad = tmp_path / 'bad.npz'
  np.savez(bad, **{'params/fc/kernel': np.zeros((3, 3))})
  with pytest.raises(ConfigError, match='cannot be used as Inception weights'):
    inception.load(str(bad))


def test_save_load_round_trip(tmp_path):
  from flax import traverse_util
  flat = _random_variables()
  variables = traverse_util.unflatten_dict({tuple(k.split('/')): v for k, v in flat.items()})
  path = str(tmp_path / 'inception.npz')
  inception.save(path, variables)
  loaded, digest = inception.load(path)
  got = traverse_util.flatten_dict(loaded, sep='/')
  assert sorted(got) == sorted(flat) and len(digest) == 10
  assert all(np.array_equal(got[k], flat[k]) for k in flat)
