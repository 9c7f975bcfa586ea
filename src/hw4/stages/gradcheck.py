"""The `gradcheck` stage: homework Problem 1's layers checked before anything trains on them.

    python -m hw4 gradcheck [--params params.yaml]

For each scratch layer (linear, relu, conv2d, maxpool2d; batchnorm2d, the demo CNN's, in
training with the batch's statistics):
- torch.autograd.gradcheck in float64 on small inputs (odd sizes, batch 1, stride 2 and
  padding for the convolution): the hand-written backward against finite differences;
- float32 outputs and gradients against torch.nn.functional on the CNN's shapes.
Writes the largest absolute errors and a pass flag per layer (results/gradcheck.json; the
headline in metrics/gradcheck.json); exits non-zero if any fails.
"""

from __future__ import annotations

import contextlib
import functools
import sys
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor

from hw4 import layers
from hw4.config import command
from hw4.config.settings import ConfigError, flatten, load_params, section
from hw4.io import paths
from hw4.io.outputs import write_results
from hw4.tracking.runs import StageRun

EXPERIMENT = "gradcheck"


@dataclass
class GradcheckSettings:
    """params.yaml `gradcheck`.

    gradcheck (float64, errors ~1e-9) takes atol and rtol as torch.autograd.gradcheck
    defines them. In the float32 comparison with torch an entry passes when
    |got - want| <= atol * max(1, max|want|) + rtol * |want|: summing in another order
    errs by ~1e-6 of the largest entry, even on entries that cancel to near zero.
    A wrong term in a derivation gives errors of the order of the values themselves.
    """

    seed: int
    atol: float
    rtol: float

    def validate(self, where: str) -> None:
        if self.atol < 0 or self.rtol < 0:
            raise ConfigError(f"params '{where}': atol and rtol must be >= 0, got {self.atol}, {self.rtol}")


class GradcheckFailed(RuntimeError):
    """A scratch layer disagrees with finite differences or with torch."""


@dataclass(frozen=True)
class Case:
    """One call of a layer: the shapes of its tensor arguments (in order) and its options."""

    shapes: dict[str, tuple[int, ...]]
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Layer:
    scratch: Callable[..., Tensor]
    reference: Callable[..., Tensor]
    gradcheck_cases: tuple[Case, ...]
    compare_cases: tuple[Case, ...]
    kink_margin: float = 0.0  # keep inputs this far from 0, where ReLU has no derivative


def _conv(x: tuple[int, ...], f: int, k: int, **options: Any) -> Case:
    return Case({"x": x, "weight": (f, x[1], k, k), "bias": (f,)}, options)


def _norm(x: tuple[int, ...]) -> Case:
    return Case({"x": x, "weight": (x[1],), "bias": (x[1],)})


LAYERS: dict[str, Layer] = {
    "linear": Layer(
        layers.linear,
        F.linear,
        gradcheck_cases=(Case({"x": (1, 5), "weight": (3, 5), "bias": (3,)}), Case({"x": (4, 7), "weight": (2, 7), "bias": (2,)})),
        compare_cases=(Case({"x": (8, 3872), "weight": (100, 3872), "bias": (100,)}), Case({"x": (8, 100), "weight": (10, 100), "bias": (10,)})),
    ),
    "relu": Layer(
        layers.relu,
        F.relu,
        gradcheck_cases=(Case({"x": (1, 1, 9, 11)}), Case({"x": (3, 4)})),
        compare_cases=(Case({"x": (8, 32, 22, 22)}), Case({"x": (8, 100)})),
        kink_margin=0.1,
    ),
    "conv2d": Layer(
        layers.conv2d,
        F.conv2d,
        gradcheck_cases=(
            _conv((1, 1, 9, 11), 2, 1),
            _conv((2, 3, 9, 11), 4, 3),
            _conv((1, 2, 9, 11), 3, 7),
            _conv((2, 3, 9, 11), 2, 3, stride=2, padding=1),
        ),
        compare_cases=(_conv((8, 1, 28, 28), 32, 7), _conv((4, 8, 13, 13), 16, 3, stride=2, padding=1)),
    ),
    "maxpool2d": Layer(
        layers.max_pool2d,
        F.max_pool2d,
        gradcheck_cases=(Case({"x": (1, 1, 9, 11)}, {"kernel_size": 2}), Case({"x": (2, 3, 8, 8)}, {"kernel_size": 2})),
        compare_cases=(Case({"x": (8, 32, 22, 22)}, {"kernel_size": 2}), Case({"x": (2, 3, 9, 11)}, {"kernel_size": 2})),
    ),
    "batchnorm2d": Layer(
        layers.batch_norm2d,
        lambda x, weight, bias: F.batch_norm(x, None, None, weight, bias, training=True),
        gradcheck_cases=(_norm((2, 3, 4, 5)), _norm((5, 2, 1, 1))),
        compare_cases=(_norm((8, 32, 14, 14)), _norm((8, 64, 7, 7))),
    ),
}


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """Tiny tensors: a second thread only adds OpenMP barriers, slow on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _inputs(case: Case, dtype: torch.dtype, gen: torch.Generator, kink_margin: float) -> list[Tensor]:
    tensors = []
    for shape in case.shapes.values():
        t = torch.randn(shape, dtype=dtype, generator=gen)
        tensors.append((t + kink_margin * t.sign()).requires_grad_())
    return tensors


def _bound(want: Tensor, s: GradcheckSettings) -> Tensor:
    return s.atol * max(1.0, want.abs().max().item()) + s.rtol * want.abs()


def _gradcheck(layer: Layer, s: GradcheckSettings, gen: torch.Generator) -> bool:
    """The written-out backward against finite differences, in float64."""
    for case in layer.gradcheck_cases:
        inputs = _inputs(case, torch.float64, gen, layer.kink_margin)
        fn = functools.partial(layer.scratch, **case.options)
        if not torch.autograd.gradcheck(fn, inputs, atol=s.atol, rtol=s.rtol, raise_exception=False):
            return False
    return True


def _compare(layer: Layer, s: GradcheckSettings, gen: torch.Generator) -> dict[str, Any]:
    """float32 outputs and gradients against torch.nn.functional: largest errors, and whether all are in bounds."""
    errors: dict[str, float] = {}
    within = True
    for case in layer.compare_cases:
        inputs = _inputs(case, torch.float32, gen, layer.kink_margin)
        got, want = layer.scratch(*inputs, **case.options), layer.reference(*inputs, **case.options)
        dy = torch.randn(want.shape, generator=gen)
        pairs = {"out": (got, want)}
        grads = zip(torch.autograd.grad(got, inputs, dy), torch.autograd.grad(want, inputs, dy))
        pairs.update({f"grad_{name}": pair for name, pair in zip(case.shapes, grads)})
        for key, (g, w) in pairs.items():
            diff = (g - w).abs()
            within &= bool((diff <= _bound(w, s)).all())
            errors[f"max_abs_err_{key}"] = max(errors.get(f"max_abs_err_{key}", 0.0), diff.max().item())
    errors["max_abs_err_grad"] = max(v for k, v in errors.items() if k.startswith("max_abs_err_grad_"))
    return {"within_tolerance": within, **errors}


def check_layer(layer: Layer, s: GradcheckSettings, gen: torch.Generator) -> dict[str, Any]:
    gradcheck_ok = _gradcheck(layer, s, gen)
    comparison = _compare(layer, s, gen)
    return {"passed": gradcheck_ok and comparison["within_tolerance"], "gradcheck": gradcheck_ok, **comparison}


def check_all(s: GradcheckSettings) -> dict[str, dict[str, Any]]:
    gen = torch.Generator().manual_seed(s.seed)
    with _one_thread():
        return {name: check_layer(layer, s, gen) for name, layer in LAYERS.items()}


def run(settings: GradcheckSettings) -> dict[str, Any]:
    """Check every layer, write the metrics file, then raise if any layer failed.

    One MLflow run (experiment `gradcheck`) holds the errors per layer; a failed check
    leaves it FAILED.
    """
    with StageRun(EXPERIMENT, "gradcheck", flatten(asdict(settings))) as mlflow_run:
        results = check_all(settings)
        failed = [name for name, r in results.items() if not r["passed"]]
        worst = max(max(r["max_abs_err_out"], r["max_abs_err_grad"]) for r in results.values())
        record = {**results, "layers_failed": len(failed), "max_abs_err": worst, "run_id": mlflow_run.run_id,
                  "headline": ["layers_failed", "max_abs_err"]}
        written = write_results(paths.GRADCHECK, record)
        mlflow_run.log_metrics({f"{name}/{k}": float(v) for name, r in results.items() for k, v in r.items() if k.startswith("max_abs_err")})
        for path in written:
            mlflow_run.log_artifact(path)
        if failed:
            raise GradcheckFailed(f"scratch layer(s) {failed} failed their checks; errors are in {written[0]}")
    return results


def main(argv: list[str] | None = None) -> None:
    args = command.parser("gradcheck", __doc__).parse_args(argv)
    settings = section(load_params(args.params), "gradcheck", GradcheckSettings)
    try:
        results = run(settings)
    except GradcheckFailed as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(1) from None
    for name, r in results.items():
        print(f"{name:10s} passed  max|err| out {r['max_abs_err_out']:.2e}  grad {r['max_abs_err_grad']:.2e}")
