"""Pure GAN losses. Each returns `(loss, metrics)` with scalar entries."""

from typing import Callable, Dict, Tuple

import jax
import jax.numpy as jnp
import optax

Metrics = Dict[str, jax.Array]


def wasserstein_critic(real_adv, fake_adv) -> Tuple[jax.Array, Metrics]:
  """Critic minimises E[D(G(z))] - E[D(x)]; reports the estimate E[D(x)] - E[D(G(z))]."""
  d_real, d_fake = jnp.mean(real_adv), jnp.mean(fake_adv)
  return d_fake - d_real, {'wasserstein': d_real - d_fake, 'd_real': d_real, 'd_fake': d_fake}


def wasserstein_gen(fake_adv) -> Tuple[jax.Array, Metrics]:
  return -jnp.mean(fake_adv), {}


def nonsaturating_critic(real_logits, fake_logits) -> Tuple[jax.Array, Metrics]:
  """-log D(x) - log(1 - D(G(z))) from logits; reports mean probabilities D(x), D(G(z))."""
  loss = jnp.mean(jax.nn.softplus(-real_logits)) + jnp.mean(jax.nn.softplus(fake_logits))
  return loss, {'d_real': jnp.mean(jax.nn.sigmoid(real_logits)),
                'd_fake': jnp.mean(jax.nn.sigmoid(fake_logits))}


def nonsaturating_gen(fake_logits) -> Tuple[jax.Array, Metrics]:
  """The non-saturating generator loss -log D(G(z))."""
  return jnp.mean(jax.nn.softplus(-fake_logits)), {}


def hinge_critic(real_logits, fake_logits) -> Tuple[jax.Array, Metrics]:
  """E[max(0, 1 - D(x))] + E[max(0, 1 + D(G(z)))] (SNGAN, Miyato et al. 2018)."""
  d_real, d_fake = jnp.mean(real_logits), jnp.mean(fake_logits)
  loss = jnp.mean(jax.nn.relu(1.0 - real_logits)) + jnp.mean(jax.nn.relu(1.0 + fake_logits))
  return loss, {'d_real': d_real, 'd_fake': d_fake}


def hinge_gen(fake_logits) -> Tuple[jax.Array, Metrics]:
  """-E[D(G(z))], the hinge GAN's generator loss."""
  return -jnp.mean(fake_logits), {}


def least_squares_critic(real_logits, fake_logits) -> Tuple[jax.Array, Metrics]:
  """LSGAN (Mao et al. 2017), 0-1 coding: 1/2 E[(D(x) - 1)^2] + 1/2 E[D(G(z))^2]."""
  loss = 0.5 * jnp.mean(jnp.square(real_logits - 1.0)) + 0.5 * jnp.mean(jnp.square(fake_logits))
  return loss, {'d_real': jnp.mean(real_logits), 'd_fake': jnp.mean(fake_logits)}


def least_squares_gen(fake_logits) -> Tuple[jax.Array, Metrics]:
  """LSGAN's generator loss 1/2 E[(D(G(z)) - 1)^2]."""
  return 0.5 * jnp.mean(jnp.square(fake_logits - 1.0)), {}


ADVERSARIAL = {
    'wasserstein': (wasserstein_critic, wasserstein_gen),
    'nonsaturating': (nonsaturating_critic, nonsaturating_gen),
    'hinge': (hinge_critic, hinge_gen),
    'least_squares': (least_squares_critic, least_squares_gen),
}


def safe_norm(x: jax.Array, axis) -> jax.Array:
  """L2 norm whose value and gradient are finite (0) at x = 0, where sqrt'(0) would give NaN."""
  sq = jnp.sum(jnp.square(x), axis=axis)
  positive = sq > 0
  return jnp.where(positive, jnp.sqrt(jnp.where(positive, sq, 1.0)), 0.0)


def gradient_penalty(critic_fn: Callable[[jax.Array], jax.Array],
                     x_hat: jax.Array) -> Tuple[jax.Array, jax.Array]:
  """WGAN-GP penalty E[(||grad_x D(x_hat)||_2 - 1)^2] with per-example norms.

  Args:
    critic_fn: maps a batch [B, ...] to critic outputs [B]; each output depends only on its
      own example (no batch norm), so the gradient of the sum gives per-example gradients.
    x_hat: the interpolates [B, ...].

  Returns:
    (penalty, mean gradient norm), scalars.
  """
  grads = jax.grad(lambda x: jnp.sum(critic_fn(x)))(x_hat)
  grads = grads.astype(jnp.float32)  # norms in float32 also when the critic computes in bf16
  norms = safe_norm(grads.reshape(grads.shape[0], -1), axis=-1)
  return jnp.mean(jnp.square(norms - 1.0)), jnp.mean(norms)


def r1_penalty(critic_fn: Callable[[jax.Array], jax.Array], real: jax.Array) -> jax.Array:
  """R1 (Mescheder et al. 2018): E[||grad_x D(x)||_2^2] over real images [B, ...] (the loss
  adds gamma / 2 times it). `critic_fn` as for gradient_penalty: per-example outputs [B]."""
  grads = jax.grad(lambda x: jnp.sum(critic_fn(x)))(real).astype(jnp.float32)
  return jnp.mean(jnp.sum(jnp.square(grads.reshape(grads.shape[0], -1)), axis=-1))


# LeCam regularisation (Tseng et al. 2021, "Regularizing Generative Adversarial Networks under
# Limited Data"): the critic's outputs on real images are pulled toward an anchor alpha_F, an
# exponential moving average of its mean output on generated images, and its outputs on generated
# images toward alpha_R, the average on real ones (config.loss.lecam_*).
#   'one_sided': E[relu(D(x) - alpha_F)^2] + E[relu(alpha_R - D(G(z)))^2], what the authors' code
#                (google/lecam-gan: biggan_cifar/losses.py, stylegan2/lecam_loss.py) and
#                StudioGAN (src/utils/losses.py) compute, and what their reported numbers used.
#   'two_sided': E[(D(x) - alpha_F)^2] + E[(D(G(z)) - alpha_R)^2], the paper's equation (3).
LECAM_FORMS = ('one_sided', 'two_sided')


def lecam_anchors(anchors, real_adv, fake_adv, decay, copy):
  """The anchors {'real': alpha_R, 'fake': alpha_F} after one critic update that saw outputs
  `real_adv` and `fake_adv`: decay * alpha + (1 - decay) * the batch's mean output, or (`copy`
  true, before loss.lecam_start_step) the batch's mean itself. Float32 scalars; no gradient
  flows into them."""
  rate = jnp.where(copy, 0.0, decay).astype(jnp.float32)
  mean = lambda x: jnp.mean(jax.lax.stop_gradient(x).astype(jnp.float32))
  return {'real': rate * anchors['real'] + (1.0 - rate) * mean(real_adv),
          'fake': rate * anchors['fake'] + (1.0 - rate) * mean(fake_adv)}


def lecam_penalty(real_adv, fake_adv, anchors, form: str = 'one_sided') -> jax.Array:
  """R_LC of the critic's outputs on real images `real_adv` and generated ones `fake_adv` ([B]
  each) against `anchors` (lecam_anchors); `form` one of LECAM_FORMS."""
  real_adv, fake_adv = real_adv.astype(jnp.float32), fake_adv.astype(jnp.float32)
  real_gap = real_adv - anchors['fake']    # D(x) above alpha_F
  fake_gap = anchors['real'] - fake_adv    # D(G(z)) below alpha_R
  if form == 'one_sided':
    real_gap, fake_gap = jax.nn.relu(real_gap), jax.nn.relu(fake_gap)
  return jnp.mean(jnp.square(real_gap)) + jnp.mean(jnp.square(fake_gap))


def interpolation_weights(eps_key, batch_size: int, ndim: int = 4):
  """One eps ~ U[0, 1] per example, shaped [B, 1, ..., 1] to broadcast over an image."""
  return jax.random.uniform(eps_key, (batch_size,) + (1,) * (ndim - 1), jnp.float32)


def interpolate(real, fake, eps):
  """x_hat = eps x + (1 - eps) x_fake (eps from interpolation_weights)."""
  return eps * real + (1.0 - eps) * fake


# What the ACGAN critic's class head learns from (config.loss.class_loss); the generator's class
# loss is always its samples' cross-entropy at the labels it was asked for.
#   'real_fake': real and generated images (Odena et al. 2017). The critic can then learn the
#                generator's classes from whatever marks them in the fakes, and the generator
#                can satisfy it with marks a classifier of real images does not see.
#   'real':      real images only (StudioGAN's ACGAN): the head is a classifier of real images,
#                so a sample is rewarded for looking like its class's real images.
#   'tac':       real images only, and a twin head learns the generated images' classes; the
#                generator's loss subtracts the twin's cross-entropy (TAC-GAN, Gong et al. 2019),
#                which removes the bias of 'real' toward samples far from the class boundaries.
#   'd2d':       real images only, with the data-to-data cross-entropy in place of the
#                cross-entropy (ReACGAN, Kang et al. 2021; `data_to_data_xent`): the class head
#                is a unit embedding of the critic's features and a unit proxy per class, and
#                each image is pulled toward its class's proxy and pushed from the other classes'
#                images of the batch, not from the other classes' proxies.
CLASS_LOSSES = ('real_fake', 'real', 'tac', 'd2d')


def auxiliary_xent(class_logits, labels) -> Tuple[jax.Array, jax.Array]:
  """ACGAN auxiliary classifier: (mean cross-entropy, accuracy)."""
  xent = optax.softmax_cross_entropy_with_integer_labels(class_logits, labels)
  acc = jnp.mean(jnp.argmax(class_logits, -1) == labels)
  return jnp.mean(xent), acc


def _without_diagonal(m):
  """[B, B] -> [B, B - 1]: row i of `m` without its entry i."""
  b = m.shape[0]
  cols = jnp.arange(b - 1)[None, :]
  return jnp.take_along_axis(m, cols + (cols >= jnp.arange(b)[:, None]), axis=1)


def data_to_data_xent(embed, proxy_sims, labels, temperature: float, margin: float
                      ) -> Tuple[jax.Array, jax.Array]:
  """ReACGAN's data-to-data cross-entropy (Kang et al. 2021, eq. 8, with the official code's
  margins, false-negative removal and shift): (its mean over the batch, the accuracy of the
  nearest proxy).

  `embed` [B, E]: the critic's unit embeddings of the batch's images; `proxy_sims` [B, K]: the
  cosine of each to every class's unit proxy; `labels` [B]. With s_ij = cos(e_i, e_j) and
  s_i = cos(e_i, proxy of y_i), T the temperature and m the margin, per image

    pos_i = relu((m - s_i) / T),
    neg_i = log(exp(-pos_i) + sum_{j != i, y_j != y_i} exp(relu((s_ij + m - 1) / T) - M_i)),

  M_i the largest (s_ij + m - 1) / T over j != i (held constant in the gradient), as
  StudioGAN's `Data2DataCrossEntropyLoss` computes it (its shift applies to the data-to-data
  terms only, so it is part of the loss, not only of its numerics); the loss is the mean of
  pos_i + neg_i. Images of the same class are not negatives of each other (the false-negative
  removal). The batch is the global one: under pmap the caller gathers it.
  """
  embed, proxy_sims = embed.astype(jnp.float32), proxy_sims.astype(jnp.float32)
  sims = _without_diagonal(
      (jnp.matmul(embed, embed.T, precision=jax.lax.Precision.HIGHEST) + margin - 1.0)
      / temperature)
  sims = jax.nn.relu(sims) - jax.lax.stop_gradient(jnp.max(sims, axis=1, keepdims=True))
  negatives = _without_diagonal(labels[:, None] != labels[None, :])
  to_proxy = jnp.take_along_axis(proxy_sims, labels[:, None], axis=1)[:, 0]
  attraction = jax.nn.relu((margin - to_proxy) / temperature)
  repulsion = jnp.log(jnp.exp(-attraction) +
                      jnp.sum(jnp.where(negatives, jnp.exp(sims), 0.0), axis=1))
  accuracy = jnp.mean(jnp.argmax(proxy_sims, -1) == labels)
  return jnp.mean(attraction + repulsion), accuracy


def orthogonal_penalty(params) -> jax.Array:
  """BigGAN's orthogonal regularisation (Brock et al. 2019, eq. 3) without its beta: the sum over
  every kernel W (dense and conv weights as the matrix [inputs, outputs], their raw values) of
  ||W^T W * (1 - I)||_F^2, the squared inner products of different output units' weights.

  Kernels only: biases, norm parameters and the attention's gain have one axis, and embeddings
  (BigGAN's shared class embedding, which BigGAN-PyTorch leaves out) are not kernels. Where W
  has fewer rows than columns (a linear layer to a 4x4 map) the Gram matrix of the rows gives
  the same sum: ||W^T W||_F = ||W W^T||_F, less the squared column norms on the diagonal.
  BigGAN-PyTorch's `utils.ortho(model, beta)` adds 2 beta (W W^T * (1 - I)) W to the gradient,
  the gradient of beta / 2 times this penalty.
  """
  total = jnp.zeros((), jnp.float32)
  for path, w in jax.tree_util.tree_flatten_with_path(params)[0]:
    if getattr(path[-1], 'key', None) != 'kernel' or w.ndim < 2:
      continue
    w = w.reshape(-1, w.shape[-1]).astype(jnp.float32)  # [inputs, outputs]
    if w.shape[0] < w.shape[1]:
      total += (jnp.sum(jnp.square(w @ w.T)) -
                jnp.sum(jnp.square(jnp.sum(jnp.square(w), axis=0))))
    else:
      off_diagonal = 1.0 - jnp.eye(w.shape[1], dtype=jnp.float32)
      total += jnp.sum(jnp.square((w.T @ w) * off_diagonal))
  return total
