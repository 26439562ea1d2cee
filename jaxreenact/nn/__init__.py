"""PyTorch-semantics primitives, NHWC. Each op mirrors one torch op exactly and has a parity test.

- `torch_layers`: Conv2d / Linear / BatchNorm (frozen) / PReLU with PyTorch parameter names, pooling
  (max, avg, adaptive avg with PyTorch's uneven bins), bilinear/nearest interpolation with `align_corners`.
- `stylegan`: upfirdn2d, blur, equalized-lr layers, fused bias + leaky ReLU, pixel norm, modulated conv.
- `warp`: the kornia 0.4.1 `warp_affine` sampling convention (DECA crops).

Parameters keep the PyTorch names (`weight`, `bias`); kernels are stored HWIO, dense weights [in, out].
Non-trainable tensors (BatchNorm running statistics, StyleGAN2 noise) live in the `buffers` collection.
"""
