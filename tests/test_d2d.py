"""ReACGAN's data-to-data cross-entropy (loss.class_loss 'd2d', Kang et al. 2021): the loss
against a PyTorch reference written from the official code's behaviour (StudioGAN's
`Data2DataCrossEntropyLoss`: margins, false-negative removal, the shift of the data-to-data
terms by their row maximum held constant), values and gradients; the critic's head; and how
the critic's and generator's losses take it."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import load_config, reference_import
from gan_jax import images, losses, models, updates
from test_train import _critic_metrics, _Run

torch = reference_import('torch')


def _torch_d2d(embed, proxy, labels, num_classes, temperature, margin):
  """The reference, step by step as the official loss takes it: embed [B, E] and proxy [B, E]
  (the proxy of each image's class) unnormalised, cosines as torch.nn.CosineSimilarity."""
  cos = torch.nn.CosineSimilarity(dim=-1)
  b = embed.shape[0]
  off_diagonal = ~torch.eye(b, dtype=torch.bool)
  remove_diag = lambda m: m[off_diagonal].view(b, -1)
  sim = cos(embed.unsqueeze(1), embed.unsqueeze(0)) + margin - 1
  sim = remove_diag(sim / temperature)
  sim_max, _ = torch.max(sim, dim=1, keepdim=True)
  sim = torch.nn.functional.relu(sim) - sim_max.detach()
  smp2proxy = cos(embed, proxy)
  # index matrix [K, B]: 0 where the image is of class c; rows picked by each image's label
  index = torch.ones(num_classes, b, dtype=torch.long)
  for c in range(num_classes):
    index[c, labels == c] = 0
  removal = remove_diag(index[labels])
  improved = removal * torch.exp(sim)
  pos = torch.nn.functional.relu((margin - smp2proxy) / temperature)
  neg = torch.log(torch.exp(-pos) + improved.sum(dim=1))
  return (pos + neg).mean()


def _unit(v):
  return v / jnp.linalg.norm(v, axis=-1, keepdims=True)


@pytest.mark.parametrize('batch,classes,dim,temperature,margin', [
    (8, 3, 5, 0.5, 0.98), (16, 10, 32, 0.25, 0.98), (12, 4, 7, 1.0, 0.5)])
def test_d2d_matches_the_reference_values_and_gradients(batch, classes, dim, temperature,
                                                         margin):
  rng = np.random.default_rng(batch)
  embed = rng.normal(size=(batch, dim)).astype(np.float32)
  table = rng.normal(size=(classes, dim)).astype(np.float32)
  labels = rng.integers(0, classes, size=batch)
  labels[:2] = labels[2]  # a class with several images: false negatives to remove

  def ours(embed, table):
    e, p = _unit(embed), _unit(table)
    return losses.data_to_data_xent(e, e @ p.T, jnp.asarray(labels), temperature, margin)[0]

  value, grads = jax.value_and_grad(ours, argnums=(0, 1))(jnp.asarray(embed), jnp.asarray(table))
  t_embed = torch.tensor(embed, dtype=torch.float64, requires_grad=True)
  t_table = torch.tensor(table, dtype=torch.float64, requires_grad=True)
  t_value = _torch_d2d(t_embed, t_table[torch.tensor(labels)], torch.tensor(labels), classes,
                       temperature, margin)
  t_value.backward()
  np.testing.assert_allclose(float(value), t_value.item(), rtol=1e-5)
  np.testing.assert_allclose(np.asarray(grads[0]), t_embed.grad.numpy(), rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(np.asarray(grads[1]), t_table.grad.numpy(), rtol=1e-4, atol=1e-6)


def test_d2d_rewards_an_embedding_at_its_proxy_and_away_from_other_classes():
  """Images at their class's proxy, classes orthogonal: the attraction is 0 (cos 1 > m_p) and
  the repulsion log(1 + sum exp(0 - M)) small; scrambled labels cost more."""
  proxies = jnp.eye(4)
  labels = jnp.array([0, 1, 2, 3, 0, 1, 2, 3])
  embed = proxies[labels]
  good, acc = losses.data_to_data_xent(embed, embed @ proxies.T, labels, 0.5, 0.98)
  bad, bad_acc = losses.data_to_data_xent(embed, embed @ proxies.T, jnp.roll(labels, 1), 0.5,
                                          0.98)
  assert float(acc) == 1.0 and float(bad_acc) == 0.0
  assert float(good) < float(bad)
  # each image: 6 other-class images at cos 0, (0 + 0.98 - 1) / 0.5 = -0.04 -> relu 0, minus
  # the row's max (its same-class twin: 0.98 / 0.5 = 1.96)
  np.testing.assert_allclose(float(good), np.log(1 + 6 * np.exp(-1.96)), rtol=1e-5)


def test_d2d_critic_has_reacgans_head():
  config = load_config('acgan.py:digits,runlocal', loss__class_loss='d2d',
                       model__class_embed_dim=24)
  gen, critic = models.build(config.model, (28, 28, 1), 10, conditioning='d2d')
  x, labels = jnp.ones((6, 28, 28, 1)), jnp.arange(6)
  variables = critic.init(jax.random.PRNGKey(0), x, labels)
  params = variables['params']
  assert params['embed_head']['kernel'].shape[-1] == 24
  assert params['class_proxies']['embedding'].shape == (10, 24)
  assert 'class_head' not in params
  (adv, class_out), _ = critic.apply(variables, jax.random.normal(jax.random.PRNGKey(1),
                                                                  x.shape), labels,
                                     mutable=['batch_stats'])
  assert adv.shape == (6,) and class_out.shape == (6, 10 + 24)
  cosines, embed = class_out[:, :10], class_out[:, 10:]
  np.testing.assert_allclose(np.linalg.norm(embed, axis=-1), 1.0, rtol=1e-5)
  expected = embed @ _unit(params['class_proxies']['embedding']).T
  np.testing.assert_allclose(cosines, expected, atol=1e-6)
  assert gen.conditioning == 'd2d'  # ACGAN's generator: z times a label embedding
  assert 'label_embed' in gen.init(jax.random.PRNGKey(0), jnp.ones((2, config.latent_dim)),
                                   jnp.arange(2))['params']


def test_d2d_enters_the_critics_loss_on_real_images_and_the_generators_on_its_samples():
  config = load_config('acgan.py:digits,runlocal', loss__class_loss='d2d',
                       model__class_embed_dim=16, loss__d2d_temperature=0.25)
  run = _Run(config)
  state = run.stepper.init()
  batch = jax.tree.map(lambda x: x[0], run.stream(config).next(1))
  key = jax.random.PRNGKey(3)

  def critic_metrics(aux_weight):
    return _critic_metrics(dataclasses.replace(run.gan, aux_weight=aux_weight), state, batch, key)

  with_class, adversarial_only = critic_metrics(0.5), critic_metrics(0.0)
  np.testing.assert_allclose(float(with_class['critic_loss'] - adversarial_only['critic_loss']),
                             0.5 * float(with_class['aux_loss_real']), rtol=1e-5)
  # the logged class loss is the D2D-CE of the critic's head on the real batch
  real = images.to_signed(batch['image'])
  critic_vars = {'params': state.critic.params, **state.critic.stats}
  (_, out), _ = run.gan.critic.apply(critic_vars, real, batch['label'], mutable=['batch_stats'])
  expected, _ = losses.data_to_data_xent(out[:, 10:], out[:, :10], batch['label'], 0.25, 0.98)
  np.testing.assert_allclose(float(with_class['aux_loss_real']), float(expected), rtol=1e-4)

  def gen_loss(aux_weight):
    gan = dataclasses.replace(run.gan, aux_weight=aux_weight)
    return jax.jit(lambda s, k: updates.gen_update(gan, s.gen, s.critic, k, 16)[1])(state, key)

  with_class, adversarial_only = gen_loss(1.0), gen_loss(0.0)
  np.testing.assert_allclose(float(with_class['gen_loss'] - adversarial_only['gen_loss']),
                             float(with_class['aux_loss_fake']), rtol=1e-5)
  assert float(with_class['aux_loss_fake']) > 0
