r"""Writes IDX files (MNIST-style) out as folders of PNG files, one subfolder per class (to train
on a folder, or to check that a folder gives what its IDX files give):

  python -m gan_jax.tools.idx_to_folder --out=/tmp/fashion_png   # Fashion-MNIST, train and test
  python main.py --config=configs/wgan_gp.py:fashion_mnist \
      --config.dataset.path=/tmp/fashion_png/train --workdir=/tmp/wgan_gp_fmnist_png

OUT/<split>/<label>_<name>/<index>.png: the label first (zero-padded), so that the sorted folder
names give the IDX labels back; the index is the image's place in the IDX file. PNG is lossless
and the images are 28 x 28 grayscale, so the folder loads (image_size 28, channels 1) the very
arrays of the IDX files, in another order (class by class). Prints one JSON line: the folders
and their image counts. --idx_dir and --out may be gs:// paths.
"""

import concurrent.futures
import io
import json
import re

from absl import flags
from PIL import Image

from gan_jax import cli, files, input_pipeline
from gan_jax.errors import ConfigError, DataError

FASHION_MNIST = ('T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt',
                 'Sneaker', 'Bag', 'Ankle boot')

flags.DEFINE_string('idx_dir', '/usr/share/datasets/fashion-mnist',
                    'Directory with the IDX files (Debian package dataset-fashion-mnist).')
flags.DEFINE_string('out', None, 'Folder to write: OUT/<split>/<label>_<name>/<index>.png.')
flags.DEFINE_list('splits', ['train', 'test'], 'IDX splits to write (train: train-*, test: t10k-*).')
flags.DEFINE_list('class_names', list(FASHION_MNIST), 'Names of labels 0, 1, ... (folder names).')
flags.mark_flag_as_required('out')
FLAGS = flags.FLAGS


def folder_name(label: int, name: str, num_classes: int) -> str:
  """'3_dress' for label 3 of 10: sorted names give the labels back."""
  slug = re.sub(r'[^a-z0-9]+', '_', name.lower()).strip('_') or 'class'
  return f'{label:0{len(str(num_classes - 1))}d}_{slug}'


def _png(pixels) -> bytes:
  data = io.BytesIO()
  Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels).save(data, format='PNG')
  return data.getvalue()


def write_split(idx_dir: str, split: str, out: str, class_names) -> dict:
  """Writes one split's images under `out`; returns {folder: image count}."""
  data = input_pipeline.load_idx_dir(idx_dir, split)
  if data.labels is None:
    raise DataError(f'{idx_dir}: no labels file for split {split!r}')
  if data.num_classes > len(class_names):
    raise ConfigError(f'{data.num_classes} classes but {len(class_names)} --class_names')
  names = [folder_name(i, class_names[i], data.num_classes) for i in range(data.num_classes)]
  width = len(str(len(data.images) - 1))
  paths = [str(files.path(out) / names[label] / f'{i:0{width}d}.png')
           for i, label in enumerate(data.labels)]
  for name in names:
    (files.path(out) / name).mkdir(parents=True, exist_ok=True)
  with concurrent.futures.ThreadPoolExecutor(8) as pool:
    list(pool.map(lambda i: files.write_bytes(paths[i], _png(data.images[i]), atomic=False),
                  range(len(paths))))
  counts = [int((data.labels == c).sum()) for c in range(data.num_classes)]
  return dict(zip(names, counts))


def main() -> None:
  result = {'idx_dir': FLAGS.idx_dir, 'out': FLAGS.out, 'splits': {}}
  for split in FLAGS.splits:
    target = str(files.path(FLAGS.out) / split)
    result['splits'][target] = write_split(FLAGS.idx_dir, split, target, FLAGS.class_names)
  print(json.dumps(result))


if __name__ == '__main__':
  cli.run_tool(main)
