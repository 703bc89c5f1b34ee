"""Losses with known answers."""

import jax
import jax.numpy as jnp
import numpy as np

from gan_jax import losses


def test_gradient_penalty_of_linear_critic_is_analytic():
  w = jax.random.normal(jax.random.PRNGKey(0), (4, 4, 1))
  critic = lambda x: jnp.sum(x * w, axis=(1, 2, 3)) + 0.3  # D(x) = w.x + b
  x_hat = jax.random.normal(jax.random.PRNGKey(1), (8, 4, 4, 1))
  penalty, grad_norm = losses.gradient_penalty(critic, x_hat)
  norm = float(jnp.linalg.norm(w))
  np.testing.assert_allclose(float(penalty), (norm - 1.0) ** 2, rtol=1e-5)
  np.testing.assert_allclose(float(grad_norm), norm, rtol=1e-5)


def test_gradient_penalty_is_per_example():
  # Example i's output depends on its own input with slope 0.5 or 3: per-example norms.
  scales = jnp.array([0.5, 3.0])
  critic = lambda x: scales * x[:, 0, 0, 0]
  penalty, _ = losses.gradient_penalty(critic, jnp.ones((2, 2, 2, 1)))
  np.testing.assert_allclose(float(penalty), ((0.5 - 1) ** 2 + (3 - 1) ** 2) / 2, rtol=1e-6)


def test_gradient_penalty_has_no_nan_at_zero_gradient():
  def penalty_of(w):
    return losses.gradient_penalty(lambda x: jnp.sum(x * w, axis=(1, 2, 3)),
                                   jnp.ones((3, 2, 2, 1)))[0]
  w = jnp.zeros((2, 2, 1))
  assert float(penalty_of(w)) == 1.0  # (0 - 1)^2
  grad = jax.grad(penalty_of)(w)
  assert np.all(np.isfinite(np.asarray(grad)))


def test_interpolation_uses_one_uniform_eps_per_example():
  real = jnp.zeros((64, 3, 3, 1))
  fake = jnp.ones((64, 3, 3, 1))
  x_hat = losses.interpolate(real, fake, losses.interpolation_weights(jax.random.PRNGKey(0), 64))
  # x_hat = eps * 0 + (1 - eps) * 1 = 1 - eps: constant within each example, in [0, 1].
  per_example = np.asarray(x_hat).reshape(64, -1)
  assert np.all(per_example.max(1) == per_example.min(1))
  eps = 1.0 - per_example[:, 0]
  assert eps.min() >= 0 and eps.max() <= 1
  assert eps.std() > 0.2  # uniform on [0, 1] has std 0.29; a normal eps would exceed [0, 1]


def test_wasserstein_and_nonsaturating_values():
  real, fake = jnp.array([1.0, 3.0]), jnp.array([-1.0, 0.0])
  loss, m = losses.wasserstein_critic(real, fake)
  assert float(loss) == -2.5 and float(m['wasserstein']) == 2.5
  assert float(losses.wasserstein_gen(fake)[0]) == 0.5
  loss, m = losses.nonsaturating_critic(jnp.zeros(2), jnp.zeros(2))
  np.testing.assert_allclose(float(loss), 2 * np.log(2), rtol=1e-6)
  np.testing.assert_allclose(float(m['d_real']), 0.5)
  np.testing.assert_allclose(float(losses.nonsaturating_gen(jnp.zeros(2))[0]), np.log(2),
                             rtol=1e-6)


def test_auxiliary_xent():
  logits = jnp.array([[10.0, 0.0], [0.0, 10.0]])
  xent, acc = losses.auxiliary_xent(logits, jnp.array([0, 0]))
  assert float(acc) == 0.5
  np.testing.assert_allclose(float(xent), (np.log1p(np.exp(-10)) + 10 + np.log1p(np.exp(-10))) / 2,
                             rtol=1e-5)
