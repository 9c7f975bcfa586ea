"""The hand-derived layers (hw4.layers) against finite differences and against torch.

Three kinds of check:
- gradcheck in float64: the written-out backward equals the numerical Jacobian;
- float32 values and gradients equal torch.nn.functional's on the same inputs;
- the scratch-built CNN and MLP equal the torch-built ones with the same state_dict.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hw4.layers import (ScratchBatchNorm2d, ScratchConv2d, ScratchLinear, ScratchMaxPool2d, batch_norm2d, conv2d, linear,
                        max_pool2d, relu)
from hw4.models.cnn import CNN, CNNConfig
from hw4.models.mlp import MLP, MLPConfig
from tests.conftest import conf_defaults

HOMEWORK_CNN = CNNConfig(**conf_defaults()["cnn"]["arch"])  # conf/'s default arch is the homework's

# float32 against torch: the same sums in another order. Rounding happens at the size of
# the partial sums, so entries that cancel to near zero carry absolute errors like those of
# the largest entries: atol is relative to the largest |value| of the reference
# (ATOL_OF_MAX x max|ref|), rtol bounds the rest. With float32's eps of 1.2e-7 and up to
# ~2000 terms per sum (conv dX adds F*kh*kw = 1568, dW and db B*Ho*Wo), errors observed on
# these shapes are at most ~1e-6 x max|ref| (dX; dW and db ~2e-6 x max on entries of
# the size of the max, far within rtol). A wrong term would give errors of order max|ref|.
# ReLU and max-pool do no arithmetic (they select or route values): they must agree exactly.
ATOL_OF_MAX, RTOL = 5e-6, 1e-4


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """These tensors are tiny: a second thread only adds OpenMP barriers, and on a busy
    2-core machine each barrier can wait a whole scheduler slice (~50 ms per op)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _leaf(*shape, dtype=torch.float64) -> torch.Tensor:
    return torch.randn(*shape, dtype=dtype, requires_grad=True)


def _grads(out: torch.Tensor, inputs: list[torch.Tensor], dy: torch.Tensor) -> list[torch.Tensor]:
    return list(torch.autograd.grad(out, inputs, dy))


def _assert_close(got: torch.Tensor, want: torch.Tensor, exact: bool = False, what: str = "") -> None:
    atol = 0.0 if exact else ATOL_OF_MAX * want.abs().max().item()
    torch.testing.assert_close(got, want, atol=atol, rtol=0.0 if exact else RTOL, msg=lambda m: f"{what}: {m}")


def _assert_same(fn_scratch, fn_torch, inputs, exact: bool = False) -> None:
    """Outputs and the gradient of every input agree for one random upstream gradient."""
    out, ref = fn_scratch(*inputs), fn_torch(*inputs)
    _assert_close(out, ref, exact, "output")
    dy = torch.randn_like(ref)
    for i, (got, want) in enumerate(zip(_grads(out, inputs, dy), _grads(ref, inputs, dy))):
        _assert_close(got, want, exact, f"gradient of input {i}")


# --- gradcheck (float64) ---------------------------------------------------------------


@pytest.mark.parametrize("x_shape, out_features", [((1, 5), 3), ((4, 7), 2), ((2, 3, 5), 4)])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_gradcheck(x_shape, out_features, bias):
    x, w = _leaf(*x_shape), _leaf(out_features, x_shape[-1])
    b = _leaf(out_features) if bias else None
    assert torch.autograd.gradcheck(linear, (x, w, b))


@pytest.mark.parametrize("shape", [(1, 1, 9, 11), (3, 4)])
def test_relu_gradcheck(shape):
    x = torch.randn(*shape, dtype=torch.float64)
    x = (x + 0.1 * x.sign()).requires_grad_()  # keep away from the kink at 0, where no derivative exists
    assert torch.autograd.gradcheck(relu, (x,))


CONV_CASES = [
    # (B, C, H, W), (F, kh, kw), stride, padding
    ((1, 1, 9, 11), (2, 1, 1), 1, 0),
    ((2, 3, 9, 11), (4, 3, 3), 1, 0),
    ((1, 2, 9, 11), (3, 7, 7), 1, 0),
    ((2, 3, 9, 11), (2, 3, 3), 2, 1),
    ((1, 2, 8, 7), (2, 3, 2), (2, 1), (1, 0)),
    ((1, 1, 4, 4), (1, 3, 3), 1, 3),  # padding wider than the kernel reach
]


@pytest.mark.parametrize("x_shape, w_shape, stride, padding", CONV_CASES)
@pytest.mark.parametrize("bias", [True, False])
def test_conv2d_gradcheck(x_shape, w_shape, stride, padding, bias):
    f, kh, kw = w_shape
    x, w = _leaf(*x_shape), _leaf(f, x_shape[1], kh, kw)
    b = _leaf(f) if bias else None
    assert torch.autograd.gradcheck(lambda x, w, b: conv2d(x, w, b, stride, padding), (x, w, b))


@pytest.mark.parametrize("shape, kernel", [((1, 1, 9, 11), 2), ((2, 3, 8, 8), 2), ((1, 2, 7, 10), 3)])
def test_max_pool2d_gradcheck(shape, kernel):
    assert torch.autograd.gradcheck(lambda x: max_pool2d(x, kernel), (_leaf(*shape),))


@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (5, 2, 1, 1), (1, 2, 3, 3)])
def test_batch_norm2d_gradcheck_with_the_batchs_statistics(shape):
    x, w, b = _leaf(*shape), _leaf(shape[1]), _leaf(shape[1])
    assert torch.autograd.gradcheck(batch_norm2d, (x, w, b))


def test_batch_norm2d_gradcheck_with_running_statistics():
    mean, var = torch.randn(3, dtype=torch.float64), torch.rand(3, dtype=torch.float64) + 0.5
    fn = lambda x, w, b: batch_norm2d(x, w, b, mean, var, training=False)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (_leaf(2, 3, 4, 5), _leaf(3), _leaf(3)))


# --- float32 against torch.nn.functional --------------------------------------------------


@pytest.mark.parametrize("x_shape, out_features", [((8, 3872), 100), ((8, 100), 10), ((2, 3, 5), 4)])
def test_linear_matches_torch(x_shape, out_features):
    inputs = [_leaf(*x_shape, dtype=torch.float32), _leaf(out_features, x_shape[-1], dtype=torch.float32),
              _leaf(out_features, dtype=torch.float32)]
    _assert_same(linear, F.linear, inputs)


def test_relu_matches_torch_exactly():
    x = _leaf(8, 32, 22, 22, dtype=torch.float32)
    _assert_same(relu, F.relu, [x], exact=True)


@pytest.mark.parametrize(
    "x_shape, w_shape, stride, padding",
    [((4, 1, 28, 28), (32, 7, 7), 1, 0), ((3, 8, 13, 13), (16, 3, 3), 2, 1), ((2, 3, 9, 11), (4, 5, 5), 1, 2)],
)
def test_conv2d_matches_torch(x_shape, w_shape, stride, padding):
    f, kh, kw = w_shape
    inputs = [_leaf(*x_shape, dtype=torch.float32), _leaf(f, x_shape[1], kh, kw, dtype=torch.float32),
              _leaf(f, dtype=torch.float32)]
    _assert_same(lambda x, w, b: conv2d(x, w, b, stride, padding), lambda x, w, b: F.conv2d(x, w, b, stride, padding), inputs)


@pytest.mark.parametrize("shape, kernel", [((8, 32, 22, 22), 2), ((2, 3, 9, 11), 2), ((2, 3, 10, 7), 3)])
def test_max_pool2d_matches_torch_exactly(shape, kernel):
    x = _leaf(*shape, dtype=torch.float32)
    _assert_same(lambda x: max_pool2d(x, kernel), lambda x: F.max_pool2d(x, kernel), [x], exact=True)


@pytest.mark.parametrize("training", [True, False])
def test_batch_norm2d_matches_torch_and_moves_the_running_statistics_alike(training):
    x = (_leaf(8, 32, 14, 14, dtype=torch.float32) * 3 + 1).detach().requires_grad_()
    inputs = [x, _leaf(32, dtype=torch.float32), _leaf(32, dtype=torch.float32)]
    mine, ref = (torch.randn(32), torch.rand(32) + 0.5), None
    ref = tuple(t.clone() for t in mine)
    _assert_same(lambda x, w, b: batch_norm2d(x, w, b, *mine, training=training),
                 lambda x, w, b: F.batch_norm(x, *ref, w, b, training=training), inputs)
    for got, want in zip(mine, ref):
        _assert_close(got, want, what="running statistic")


def test_max_pool2d_ties_route_to_one_position_like_torch():
    x = torch.randint(0, 2, (2, 3, 9, 11)).float().requires_grad_()  # many windows with tied maxima
    _assert_same(max_pool2d, lambda x: F.max_pool2d(x, 2), [x], exact=True)
    assert max_pool2d(x, 2).shape == (2, 3, 4, 5)  # odd sizes floor, like torch


# --- what each backward keeps -------------------------------------------------------------


def test_relu_saves_only_a_bool_mask():
    (saved,) = relu(_leaf(3, 4)).grad_fn.saved_tensors
    assert saved.dtype == torch.bool


def test_max_pool2d_saves_only_a_one_hot_bool_mask():
    (saved,) = max_pool2d(torch.zeros(1, 2, 6, 6, requires_grad=True)).grad_fn.saved_tensors  # all tied
    assert saved.dtype == torch.bool and saved.shape == (4, 1, 2, 3, 3)
    assert (saved.sum(0) == 1).all()


def test_conv2d_keeps_no_weight_when_input_needs_no_gradient():
    x = torch.randn(2, 1, 9, 9, dtype=torch.float64)  # an image batch: no gradient wanted
    cols, weight = conv2d(x, _leaf(4, 1, 3, 3)).grad_fn.saved_tensors
    assert weight is None and cols.shape == (2, 9, 49)


# --- modules and networks -----------------------------------------------------------------


def test_state_dicts_move_between_torch_and_scratch_layers():
    pairs = [(nn.Linear(5, 3), ScratchLinear(5, 3)), (nn.Conv2d(2, 4, 3, padding=1), ScratchConv2d(2, 4, 3, padding=1)),
             (nn.BatchNorm2d(2), ScratchBatchNorm2d(2))]
    x_for = {ScratchLinear: torch.randn(2, 5), ScratchConv2d: torch.randn(2, 2, 6, 6), ScratchBatchNorm2d: torch.randn(2, 2, 6, 6)}
    nn.init.uniform_(pairs[2][0].weight)  # not its initial ones
    for ref, scratch in pairs:
        scratch.load_state_dict(ref.state_dict())
        x = x_for[type(scratch)]
        _assert_close(scratch(x), ref(x), what=type(scratch).__name__)
        ref.load_state_dict(scratch.state_dict())


def _assert_nets_agree(torch_net: nn.Module, scratch_net: nn.Module, x: torch.Tensor) -> None:
    scratch_net.load_state_dict(torch_net.state_dict())
    out, ref = scratch_net(x), torch_net(x)
    _assert_close(out, ref, what="logits")
    target = torch.randint(0, ref.shape[1], (x.shape[0],))
    F.cross_entropy(out, target).backward()
    F.cross_entropy(ref, target).backward()
    want = dict(torch_net.named_parameters())
    for name, p in scratch_net.named_parameters():
        _assert_close(p.grad, want[name].grad, what=f"gradient of {name}")


@pytest.mark.parametrize("config", [
    HOMEWORK_CNN,
    CNNConfig(channels=8, kernel=5, padding=2, hidden=16, extra_channels=[16]),
    CNNConfig(channels=8, kernel=3, padding=1, hidden=16, extra_channels=[16], batch_norm=True),
], ids=["homework", "two_blocks", "batch_norm"])
def test_scratch_cnn_equals_torch_cnn(config):
    torch_net, scratch_net = CNN(config, impl="torch"), CNN(config, impl="scratch")
    _assert_nets_agree(torch_net, scratch_net, torch.randn(4, 1, 28, 28))
    torch_net.eval(), scratch_net.eval()  # BatchNorm: the running statistics, moved alike
    x = torch.randn(4, 1, 28, 28)
    _assert_close(scratch_net(x), torch_net(x), what="logits in evaluation")


def test_flip_average_evaluates_each_image_and_its_mirror_and_leaves_training_alone():
    config = CNNConfig(channels=4, kernel=3, padding=1, hidden=8, extra_channels=[], flip_average=True)
    net, x = CNN(config), torch.randn(3, 1, 28, 28)
    plain = CNN(CNNConfig(channels=4, kernel=3, padding=1, hidden=8, extra_channels=[]))
    plain.load_state_dict(net.state_dict())
    _assert_close(net(x), plain(x), exact=True, what="training")
    net.eval(), plain.eval()
    _assert_close(net(x), (plain(x) + plain(x.flip(-1))) / 2, exact=True, what="evaluation")


def test_a_batch_norm_cnns_blocks_pool_before_they_normalise():
    net = CNN(CNNConfig(channels=8, kernel=3, padding=1, hidden=16, extra_channels=[16], batch_norm=True), impl="scratch")
    assert list(net.features._modules) == ["conv1", "pool1", "bn1", "relu1", "conv2", "pool2", "bn2", "relu2"]
    assert net.features.conv1.bias is None  # BatchNorm's shift replaces it


# bf16 keeps 8 bits of mantissa (eps 7.8e-3): the two nets round different partial sums to
# it, layer after layer. Measured on this CNN (AVX-512, AVX2 and default ATen, 1 and 2
# threads): at most 0.0076 x max|ref| on any gradient (default ATen, one thread), 0.0017 on the logits. A backward
# outside the forward's autocast fails outright (float32 and bfloat16 operands).
BF16_OF_MAX = 0.03


def test_scratch_cnn_under_bf16_autocast_computes_as_torch_cnn():
    """`trainer.precision: bf16-mixed`: the hand-derived conv and linear run their forward and
    backward in bfloat16 as torch's layers do, BatchNorm in float32; gradients reach the
    float32 weights as float32."""
    config = CNNConfig(channels=8, kernel=3, padding=1, hidden=16, extra_channels=[16], batch_norm=True)
    torch_net, scratch_net = CNN(config, impl="torch"), CNN(config, impl="scratch")
    scratch_net.load_state_dict(torch_net.state_dict())
    x, labels = torch.randn(16, 1, 28, 28), torch.randint(0, 10, (16,))
    logits = {}
    for name, net in (("torch", torch_net), ("scratch", scratch_net)):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits[name] = net(x)
            F.cross_entropy(logits[name], labels).backward()
    assert logits["scratch"].dtype == logits["torch"].dtype == torch.bfloat16
    _assert_within(logits["scratch"].float(), logits["torch"].float(), BF16_OF_MAX, "logits")
    for (name, mine), ref in zip(scratch_net.named_parameters(), torch_net.parameters()):
        assert mine.grad.dtype == torch.float32
        _assert_within(mine.grad, ref.grad, BF16_OF_MAX, f"gradient of {name}")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        h = conv2d(x, torch.randn(4, 1, 3, 3), padding=1)
        assert h.dtype == torch.bfloat16 and batch_norm2d(h, torch.ones(4), torch.zeros(4)).dtype == torch.float32


def _assert_within(got: torch.Tensor, want: torch.Tensor, of_max: float, what: str) -> None:
    error = ((got - want).abs().max() / want.abs().max()).item()
    assert error <= of_max, f"{what}: max error {error:.4f} x max|ref| > {of_max}"


def test_homework_cnn_shapes():
    net = CNN(HOMEWORK_CNN, impl="scratch")
    assert net.classifier.fc1.in_features == 3872
    assert net(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def test_scratch_mlp_equals_torch_mlp():
    _assert_nets_agree(MLP(MLPConfig(), impl="torch"), MLP(MLPConfig(), impl="scratch"), torch.randn(4, 1, 28, 28))


# --- wrong inputs -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: ScratchConv2d(3, 4, 3)(torch.randn(3, 9, 9)), r"expected input of shape \(B, 3, H, W\), got \(3, 9, 9\)"),
        (lambda: ScratchConv2d(3, 4, 3)(torch.randn(2, 1, 9, 9)), r"expected input of shape \(B, 3, H, W\), got \(2, 1, 9, 9\)"),
        (lambda: ScratchConv2d(1, 4, 7)(torch.randn(2, 1, 5, 9)), r"at least 7x7 after padding, got \(2, 1, 5, 9\)"),
        (lambda: ScratchConv2d(1, 4, 3, stride=0), r"stride must be >= 1"),
        (lambda: ScratchLinear(784, 10)(torch.randn(2, 100)), r"expected input of shape \(\*, 784\).*got \(2, 100\)"),
        (lambda: ScratchMaxPool2d(2)(torch.randn(4, 9, 9)), r"expected input of shape \(B, C, H, W\), got \(4, 9, 9\)"),
        (lambda: ScratchMaxPool2d(2)(torch.randn(1, 1, 1, 9)), r"needs H, W >= 2, got \(1, 1, 1, 9\)"),
        (lambda: ScratchMaxPool2d(2, stride=1), r"stride must equal kernel_size"),
        (lambda: ScratchBatchNorm2d(3)(torch.randn(2, 4, 5, 5)), r"expected input of shape \(B, 3, H, W\), got \(2, 4, 5, 5\)"),
        (lambda: ScratchBatchNorm2d(3)(torch.randn(1, 3, 1, 1)), r"more than one value per channel, got \(1, 3, 1, 1\)"),
        (lambda: CNN(HOMEWORK_CNN, impl="scratch")(torch.randn(2, 1, 32, 32)), r"expects input of shape \(B, 1, 28, 28\), got \(2, 1, 32, 32\)"),
        (lambda: CNN(HOMEWORK_CNN, impl="numpy"), r"impl must be 'torch' or 'scratch'"),
    ],
)
def test_wrong_inputs_say_what_was_expected(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_cnn_config_rejects_an_image_too_small_for_its_blocks():
    from hw4.config.settings import ConfigError, from_dict

    with pytest.raises(ConfigError, match="leaves no pixels"):
        from_dict(CNNConfig, conf_defaults()["cnn"]["arch"] | {"kernel": 7, "extra_channels": [64, 64]}, "cnn.arch")
