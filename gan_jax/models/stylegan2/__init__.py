"""The StyleGAN2 family (Karras et al. 2020, as stylegan2-ada-pytorch builds it): its operations
(ops.py) and networks (networks.py)."""
