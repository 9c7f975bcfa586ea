"""Homework Problem 1: layers whose backward pass is the hand derivation, written out.

Each layer is a `torch.autograd.Function`; autograd only chains them together. Forward
passes use tensor primitives (matmul, strided views, max) and never another layer's
autograd. Each backward saves only what its formula reads.

Shapes follow torch: images are (B, C, H, W); a linear weight is nn.Linear's (out, in);
a conv weight is nn.Conv2d's (F, C, kh, kw). The functional wrappers at the bottom
(`linear`, `relu`, `conv2d`, `max_pool2d`, `batch_norm2d`) check shapes and are what callers use.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

Pair = tuple[int, int]


class LinearFunction(torch.autograd.Function):
    """Y = X Wᵀ + b, with W stored as nn.Linear's (out, in).

    The homework writes Y = X W with W of shape (in, out); here that matrix is `weight.T`.
    From dY_kl/dW_ij = X_ki [l = j] and dY_kl/dX_ij = [i = k] W_jl (write-up, 1a):

        dX = dY Wᵀ_hw = dY @ weight            (N, in)
        dW_hw = Xᵀ dY,  so  dweight = dYᵀ @ X   (out, in)
        db = Σ_n dY_n                           (out,)

    X may have leading dimensions (*, in) like nn.Linear; they are flattened into N.
    Saves X only if the weight needs a gradient, the weight only if X does.
    """

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        x2 = x.reshape(-1, x.shape[-1])  # (N, in)
        out = x2 @ weight.t() if bias is None else torch.addmm(bias, x2, weight.t())  # (N, out)
        needs_x, needs_w, _ = ctx.needs_input_grad
        ctx.save_for_backward(x2 if needs_w else None, weight if needs_x else None)
        ctx.x_shape = x.shape
        ctx.has_bias = bias is not None
        return out.reshape(*x.shape[:-1], weight.shape[0])

    @staticmethod
    def backward(ctx, dy: Tensor):
        x2, weight = ctx.saved_tensors
        dy2 = dy.reshape(-1, dy.shape[-1])  # (N, out)
        dx = (dy2 @ weight).reshape(ctx.x_shape) if ctx.needs_input_grad[0] else None
        dw = dy2.t() @ x2 if ctx.needs_input_grad[1] else None
        db = dy2.sum(0) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return dx, dw, db


class ReLUFunction(torch.autograd.Function):
    """Y = max(X, 0);  dX = dY ⊙ [X > 0]  (write-up, 1b; the gradient at X = 0 is taken as 0, as torch does).

    Saves only the boolean mask [X > 0] (1 byte per element), not X.
    """

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        mask = x > 0
        ctx.save_for_backward(mask)
        return x.clamp_min(0)

    @staticmethod
    def backward(ctx, dy: Tensor) -> Tensor:
        (mask,) = ctx.saved_tensors
        return dy * mask


def conv_output_size(size: int, kernel: int, stride: int, padding: int) -> int:
    """Spatial output size of a convolution (floor, like torch)."""
    return (size + 2 * padding - kernel) // stride + 1


def patches(x: Tensor, kernel: Pair, stride: Pair, padding: Pair) -> Tensor:
    """im2col: every receptive field of x as a column, in F.unfold's (c, i, j) order.

    (B, C, H, W) -> (B, C*kh*kw, Ho*Wo). Built from strided windows of a view and one
    copy, which on CPU is several times faster than F.unfold's im2col kernel.
    """
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    if ph or pw:
        x = F.pad(x, (pw, pw, ph, ph))
    windows = x.unfold(2, kh, sh).unfold(3, kw, sw)  # (B, C, Ho, Wo, kh, kw), a view
    b, c, ho, wo = windows.shape[:4]
    return windows.permute(0, 1, 4, 5, 2, 3).reshape(b, c * kh * kw, ho * wo)


class Conv2dFunction(torch.autograd.Function):
    """Y = X ⋆ K + b: cross-correlation as torch.nn.functional.conv2d defines it.

        Y[n,f,m,o] = b_f + Σ_{c,k,l} K[f,c,k,l] · Xp[n,c, m·s+k, o·s+l]     (Xp: X zero-padded)

    Forward: im2col. `patches` lays every receptive field of Xp out as a column,
    cols (B, C·kh·kw, L) with L = Ho·Wo, and Y = K_mat @ cols with K_mat = K as (F, C·kh·kw).

    Backward (write-up, 1c):

      dK[f,c,k,l] = Σ_{n,m,o} dY[n,f,m,o] · Xp[n,c, m·s+k, o·s+l]
                  = valid cross-correlation of X with dY
                  = Σ_n dY_n (F, L) @ cols_nᵀ (L, C·kh·kw)          (the saved cols, no recompute)

      dX[n,c,i,j] = Σ_{f,k,l : i = m·s+k, j = o·s+l} dY[n,f,m,o] · K[f,c,k,l]
                  = full convolution of dY with K: for stride 1, the cross-correlation of
                    dY zero-padded by kh-1 (kw-1) with K rotated by 180° and with its f and c
                    axes swapped.
        The code evaluates the same sum by scattering instead of gathering: each column of
        dcols = K_matᵀ @ dY (B, C·kh·kw, L) is the gradient of one receptive field, and
        col2im adds it back onto the pixels it was read from, then drops the padding. For
        stride > 1 this is the full convolution of dY dilated with s-1 zeros, without
        building the dilated tensor; and it avoids unfolding dY into a (B, F·kh·kw, H·W)
        matrix, which for the homework's 32 filters is 32x larger than X. col2im is kh·kw
        strided adds (`col2im`), one per kernel offset, each over the whole batch.

      db[f] = Σ_{n,m,o} dY[n,f,m,o]

    Saves cols only if K needs a gradient and K only if X does; X itself is not kept.
    """

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor | None, stride: Pair, padding: Pair) -> Tensor:
        n, _, h, w = x.shape
        f, _, kh, kw = weight.shape
        ho = conv_output_size(h, kh, stride[0], padding[0])
        wo = conv_output_size(w, kw, stride[1], padding[1])
        cols = patches(x, (kh, kw), stride, padding)  # (B, C*kh*kw, L)
        # (B, F, C*kh*kw) @ (B, C*kh*kw, L) -> (B, F, L). An explicit bmm over the expanded
        # (not copied) weight: `weight @ cols` would transpose and copy cols into one matrix.
        w_mat = weight.reshape(f, -1).expand(n, -1, -1)
        out = torch.bmm(w_mat, cols) if bias is None else torch.baddbmm(bias.view(1, f, 1), w_mat, cols)
        needs_x, needs_w, _, _, _ = ctx.needs_input_grad
        ctx.save_for_backward(cols if needs_w else None, weight if needs_x else None)
        ctx.geometry = ((h, w), (kh, kw), stride, padding)
        ctx.has_bias = bias is not None
        return out.view(n, f, ho, wo)

    @staticmethod
    def backward(ctx, dy: Tensor):
        cols, weight = ctx.saved_tensors
        (h, w), kernel, stride, padding = ctx.geometry
        n, f = dy.shape[:2]
        dy_cols = dy.reshape(n, f, -1)  # (B, F, L)
        dx = dw = db = None
        if ctx.needs_input_grad[0]:
            # (C*kh*kw, F) made contiguous once: a transposed operand slows every batch's GEMM
            w_t = weight.reshape(f, -1).t().contiguous().expand(n, -1, -1)  # (B, C*kh*kw, F)
            dcols = torch.bmm(w_t, dy_cols)  # (B, C*kh*kw, L)
            dx = col2im(dcols, (h, w), kernel, stride, padding, dy.shape[2:])  # (B, C, H, W)
        if ctx.needs_input_grad[1]:
            # (B, F, L) @ (B, L, C*kh*kw) -> (B, F, C*kh*kw), summed over the batch.
            dw = torch.bmm(dy_cols, cols.transpose(1, 2)).sum(0).view(f, -1, *kernel)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            db = dy_cols.sum((0, 2))
        return dx, dw, db, None, None


def col2im(dcols: Tensor, size: Pair, kernel: Pair, stride: Pair, padding: Pair, out_size: tuple[int, ...]) -> Tensor:
    """F.fold's sum: (B, C·kh·kw, Ho·Wo) receptive-field gradients added onto (B, C, H, W).

    Offset (k, l) of every window read pixel (m·s + k, o·s + l) of the padded input, for all
    windows (m, o) at once: one strided slice of the padded gradient per offset. On a CPU
    these kh·kw adds take about half F.fold's time for the demo CNN's second conv.
    """
    (h, w), (kh, kw), (sh, sw), (ph, pw) = size, kernel, stride, padding
    ho, wo = out_size
    n = dcols.shape[0]
    per_offset = dcols.view(n, -1, kh, kw, ho, wo)  # (B, C, kh, kw, Ho, Wo)
    dxp = dcols.new_zeros(n, per_offset.shape[1], h + 2 * ph, w + 2 * pw)
    for k in range(kh):
        for l in range(kw):
            dxp[:, :, k : k + sh * (ho - 1) + 1 : sh, l : l + sw * (wo - 1) + 1 : sw] += per_offset[:, :, k, l]
    return dxp[:, :, ph : ph + h, pw : pw + w]


class MaxPool2dFunction(torch.autograd.Function):
    """Non-overlapping k x k max-pooling (stride k; the homework's is 2x2 stride 2).

    Y[n,c,i,j] = max over the window X[n,c, i·k : i·k+k, j·k : j·k+k]. Rows and columns
    that do not fill a whole window are dropped (floor, like torch).

    dX[n,c,p,q] = dY[n,c,i,j] if (p, q) is the argmax of window (i, j), else 0. On ties one
    position gets the gradient: the first in row-major order, as F.max_pool2d picks it.
    Saves only the one-hot argmax mask (bool, one byte per pooled input element).

    Window position (a, b) of every window is one strided view of X, X[:, :, a::k, b::k]
    (B, C, Ho, Wo): the max, the tie-break and the routing back are elementwise ops over
    these k*k views, with no copy of X laid out by windows. torch's CPU max-with-indices over
    a last dimension of size 4 is several times slower than the whole layer.
    """

    @staticmethod
    def forward(ctx, x: Tensor, kernel: int) -> Tensor:
        positions = _window_positions(x, kernel)  # k*k views (B, C, Ho, Wo)
        out = positions[0]
        for view in positions[1:]:
            out = torch.maximum(out, view)
        taken = torch.zeros_like(out, dtype=torch.bool)
        argmax = []  # one-hot over the k*k positions: the first that holds the max
        for view in positions:
            first = (view == out) & ~taken
            taken |= first
            argmax.append(first)
        ctx.save_for_backward(torch.stack(argmax))  # (k*k, B, C, Ho, Wo) bool
        ctx.shape, ctx.kernel = x.shape, kernel
        return out

    @staticmethod
    def backward(ctx, dy: Tensor):
        (argmax,) = ctx.saved_tensors
        dx = dy.new_zeros(ctx.shape)  # rows and columns the windows dropped stay 0
        for view, at_max in zip(_window_positions(dx, ctx.kernel), argmax):
            view.copy_(dy * at_max)  # dY at each window's argmax, 0 elsewhere
        return dx, None


def _window_positions(x: Tensor, k: int) -> list[Tensor]:
    """The k*k views x[:, :, a::k, b::k] of whole windows, (B, C, H//k, W//k) each, row-major."""
    ho, wo = x.shape[2] // k, x.shape[3] // k
    return [x[:, :, a : ho * k : k, b : wo * k : k] for a in range(k) for b in range(k)]


class BatchNorm2dFunction(torch.autograd.Function):
    """Y = γ ⊙ X̂ + β, X̂ = (X - μ) / sqrt(σ² + ε), per channel c over the m = B·H·W values
    X[:, c] (Ioffe and Szegedy, 2015). In training μ and σ² (biased) are the batch's, so every
    value of a channel depends on all m of them; in evaluation they are running estimates,
    constants here, and the layer is a per-channel affine map.

        dβ = Σ dY                dγ = Σ dY ⊙ X̂          (sums over B, H, W; shapes (C,))

    Training: with s = 1 / sqrt(σ² + ε) and X̂ = (X - μ) s, the chain rule through μ and σ²
    (dμ/dX = 1/m, dσ²/dX = 2 (X - μ) / m) collects into

        dX = γ s / m ⊙ (m dY - dβ - X̂ ⊙ dγ)

    the upstream gradient with its per-channel mean and its component along X̂ removed.
    Evaluation: dX = γ s ⊙ dY.

    Saves X̂ and s (per channel), not X. μ and s come in as constants: in training their
    dependence on X is the chain rule above, written out, not autograd's.
    """

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor, mean: Tensor, invstd: Tensor, batch_stats: bool) -> Tensor:
        """`mean` and `invstd` (C,): the batch's (`batch_stats`, training) or the running ones."""
        x_hat = (x - mean[:, None, None]) * invstd[:, None, None]  # (B, C, H, W)
        ctx.save_for_backward(x_hat, invstd, weight)
        ctx.batch_stats = batch_stats
        return torch.addcmul(bias[:, None, None], x_hat, weight[:, None, None])

    @staticmethod
    def backward(ctx, dy: Tensor):
        x_hat, invstd, weight = ctx.saved_tensors
        dbeta = dy.sum((0, 2, 3))
        dgamma = (dy * x_hat).sum((0, 2, 3))
        dx = None
        if ctx.needs_input_grad[0]:
            scale = (weight * invstd)[:, None, None]  # γ s, (C, 1, 1)
            if ctx.batch_stats:
                m = dy.numel() // dy.shape[1]
                dx = scale / m * (m * dy - dbeta[:, None, None] - x_hat * dgamma[:, None, None])
            else:
                dx = scale * dy
        return dx, dgamma, dbeta, None, None, None


def autocast_variants(function: type[torch.autograd.Function]) -> dict[str, type[torch.autograd.Function]]:
    """`function` per device type with autocast, its forward and backward wrapped in Torch's
    `custom_fwd` / `custom_bwd` for that type: under autocast (`trainer.precision: bf16-mixed`)
    the forward's matmuls run in the lower precision as torch's own layers' do, and the
    backward, which autograd calls outside any autocast, runs under the forward's state. The
    decorators take one device type each, and a layer runs on whichever its input is on."""
    return {
        device: type(f"{function.__name__}_{device}", (function,), {
            "forward": staticmethod(torch.amp.custom_fwd(function.forward, device_type=device)),
            "backward": staticmethod(torch.amp.custom_bwd(function.backward, device_type=device)),
        })
        for device in ("cpu", "cuda")
    }


_LINEAR = autocast_variants(LinearFunction)
_CONV2D = autocast_variants(Conv2dFunction)


def as_pair(value: int | tuple[int, int], name: str) -> Pair:
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, int) for v in pair):
        raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
    return pair  # type: ignore[return-value]


def conv_geometry(stride: int | tuple[int, int], padding: int | tuple[int, int]) -> tuple[Pair, Pair]:
    """(stride, padding) as pairs, checked: stride >= 1, padding >= 0."""
    stride, padding = as_pair(stride, "stride"), as_pair(padding, "padding")
    if min(stride) < 1 or min(padding) < 0:
        raise ValueError(f"conv2d: stride must be >= 1 and padding >= 0, got stride={stride}, padding={padding}")
    return stride, padding


def _shape(t: Tensor) -> tuple[int, ...]:
    return tuple(t.shape)


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """Scratch F.linear: x (*, in), weight (out, in), bias (out,) -> (*, out)."""
    if weight.dim() != 2:
        raise ValueError(f"linear: expected a weight of shape (out, in), got {_shape(weight)}")
    if x.dim() < 1 or x.shape[-1] != weight.shape[1]:
        raise ValueError(
            f"linear: expected input of shape (*, {weight.shape[1]}) for a weight of shape "
            f"{_shape(weight)}, got {_shape(x)}"
        )
    return _LINEAR.get(x.device.type, LinearFunction).apply(x, weight, bias)


def relu(x: Tensor) -> Tensor:
    """Scratch F.relu."""
    return ReLUFunction.apply(x)


def conv2d(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, int] = 0,
) -> Tensor:
    """Scratch F.conv2d (no groups, no dilation): x (B, C, H, W), weight (F, C, kh, kw)."""
    stride, padding = conv_geometry(stride, padding)
    if weight.dim() != 4:
        raise ValueError(f"conv2d: expected a weight of shape (F, C, kh, kw), got {_shape(weight)}")
    f, c, kh, kw = weight.shape
    if x.dim() != 4 or x.shape[1] != c:
        raise ValueError(f"conv2d: expected input of shape (B, {c}, H, W), got {_shape(x)}")
    h, w = x.shape[2] + 2 * padding[0], x.shape[3] + 2 * padding[1]
    if h < kh or w < kw:
        raise ValueError(
            f"conv2d: a {kh}x{kw} kernel needs an input of at least {kh}x{kw} after padding, "
            f"got {_shape(x)} with padding {padding}"
        )
    return _CONV2D.get(x.device.type, Conv2dFunction).apply(x, weight, bias, stride, padding)


def max_pool2d(x: Tensor, kernel_size: int = 2) -> Tensor:
    """Scratch F.max_pool2d(x, kernel_size) with stride = kernel_size: (B, C, H, W) -> (B, C, H//k, W//k)."""
    if kernel_size < 1:
        raise ValueError(f"max_pool2d: kernel_size must be at least 1, got {kernel_size}")
    if x.dim() != 4:
        raise ValueError(f"max_pool2d: expected input of shape (B, C, H, W), got {_shape(x)}")
    if x.shape[2] < kernel_size or x.shape[3] < kernel_size:
        raise ValueError(
            f"max_pool2d: a {kernel_size}x{kernel_size} window needs H, W >= {kernel_size}, got {_shape(x)}"
        )
    return MaxPool2dFunction.apply(x, kernel_size)


def batch_norm2d(
    x: Tensor,
    weight: Tensor,
    bias: Tensor,
    running_mean: Tensor | None = None,
    running_var: Tensor | None = None,
    training: bool = True,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> Tensor:
    """Scratch F.batch_norm for images, x (B, C, H, W), with weight and bias (C,).

    Training normalises by the batch's statistics and, given running buffers, moves them
    towards the batch's as torch does: r <- (1 - momentum) r + momentum * batch, with the
    unbiased variance. Evaluation normalises by the running buffers. Under autocast it
    computes in float32 and returns float32.
    """
    if x.dim() != 4 or x.shape[1] != weight.shape[0]:
        raise ValueError(f"batch_norm2d: expected input of shape (B, {weight.shape[0]}, H, W), got {_shape(x)}")
    if torch.is_autocast_enabled(x.device.type):
        x = x.float()  # statistics in float32, as autocast runs torch's normalisations
    if not training:
        if running_mean is None or running_var is None:
            raise ValueError("batch_norm2d: evaluation needs running_mean and running_var")
        return BatchNorm2dFunction.apply(x, weight, bias, running_mean, (running_var + eps).rsqrt(), False)
    m = x.numel() // x.shape[1]
    if m == 1:
        raise ValueError(f"batch_norm2d: training needs more than one value per channel, got {_shape(x)}")
    with torch.no_grad():
        # Two passes, mean then squared deviations: torch.var_mean over (B, H, W) is several
        # times slower on a CPU, and E[X²] - μ² cancels badly when |μ| >> σ.
        mean = x.mean((0, 2, 3))
        var = (x - mean[:, None, None]).square().mean((0, 2, 3))  # biased, (C,)
        if running_mean is not None and running_var is not None:
            running_mean.lerp_(mean, momentum)
            running_var.lerp_(var * (m / (m - 1)), momentum)  # unbiased, as torch keeps it
    return BatchNorm2dFunction.apply(x, weight, bias, mean, (var + eps).rsqrt(), True)
