"""Tools a user runs beside main.py, each as `python -m gan_jax.tools.NAME` (from the
repository root), each printing one JSON line; a bad flag or input is one line and exit 2:

  train_classifier   the domain classifier that --mode=eval scores with, offline
  convert_inception  pytorch-fid's Inception weights -> the .npz eval.inception_weights takes
  convert_dinov2     facebook/dinov2-large (or the hub's ViT-L/14) -> the .npz eval.dinov2_weights takes
  make_gif           a run's fixed-z sample grids as an animated GIF
  plot_fid           an eval metric of a run against steps and wall-clock time, as a PNG
  idx_to_folder      IDX files written out as a folder of PNGs, one subfolder per class
"""
