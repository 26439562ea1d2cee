"""Stand-in (tests/authors_standin) for the authors' op/upfirdn2d.py: a CUDA build at import (which fails without a
CUDA toolchain, as theirs does), a CPU function `upfirdn2d_native` with their signature, and the dispatcher."""

from torch.utils.cpp_extension import load

from torch_reference.stylegan2 import upfirdn2d_ref

upfirdn2d_op = load("upfirdn2d_standin", sources=["upfirdn2d_kernel.cu"])  # no such source: fails unless patched


def upfirdn2d_native(x, kernel, up_x, up_y, down_x, down_y, pad_x0, pad_x1, pad_y0, pad_y1):
    if (up_x, down_x, pad_x0, pad_x1) != (up_y, down_y, pad_y0, pad_y1):
        raise NotImplementedError("the stand-in takes the same factors and padding on both axes")
    return upfirdn2d_ref(x, kernel, up_x, down_x, (pad_x0, pad_x1))


def upfirdn2d(x, kernel, up=1, down=1, pad=(0, 0)):
    return upfirdn2d_native(x, kernel, up, up, down, down, pad[0], pad[1], pad[0], pad[1])
