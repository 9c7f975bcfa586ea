"""Which code paths torch's CPU kernels take: pinned (`portable`) or the machine's best (`fast`).

The same seed gives different floats on different CPUs because every layer below torch picks
its kernels by the instruction set it finds (measured on an AVX-512 CPU, README
"Reproducing these numbers"):

- ATen's own kernels (elementwise ops, reductions, softmax) by its CPU capability
  (DEFAULT, AVX2, AVX512): `ATEN_CPU_CAPABILITY`;
- MKL's BLAS (every matmul, the im2col convolutions) by ISA, unless conditional numerical
  reproducibility pins a branch: `MKL_CBWR=COMPATIBLE`, the one branch every x86-64 CPU runs;
  `MKL_DYNAMIC=FALSE` so MKL never picks its own thread count;
- oneDNN (torch's CPU convolutions and LSTM/RNN) by ISA and cache size, with no way to pin
  it: `portable` turns it off (convolutions fall back to im2col + MKL);
- reductions by the number of threads: `portable` needs a fixed count.

ATen and MKL read their variables once, when first used, so `pin_before_torch` must run
before any torch op: `python -m hw4` does it from params before importing a stage. A process
that used torch first (a test, a notebook) gets a clear error from `configure` instead of
silently unpinned numbers. On a GPU none of this applies: cuBLAS and cuDNN are deterministic
under Lightning's `deterministic=True` for the same GPU model and library versions only.
"""

from __future__ import annotations

import ctypes
import os
import platform
import re
from pathlib import Path
from typing import Literal

Mode = Literal["portable", "portable_avx2", "fast"]
MODES: tuple[Mode, ...] = ("portable", "portable_avx2", "fast")

# MKL's other reproducible branches (AVX2, AVX512) exist on Intel CPUs only (on AMD, MKL
# falls back to its automatic choice), so both portable modes use COMPATIBLE.
_MKL_ENV = {"MKL_CBWR": "COMPATIBLE", "MKL_DYNAMIC": "FALSE"}
PINNED_ENV: dict[str, dict[str, str]] = {
    "portable": {"ATEN_CPU_CAPABILITY": "default", **_MKL_ENV},
    "portable_avx2": {"ATEN_CPU_CAPABILITY": "avx2", **_MKL_ENV},
    "fast": {},
}
_CAPABILITY = {"portable": "DEFAULT", "portable_avx2": "AVX2"}
_MKL_CBWR_BRANCH = 1  # mkl_cbwr_get's argument: the branch in force
_MKL_CBWR_COMPATIBLE = 3


class NumericsError(RuntimeError):
    """Portable numerics asked for in a process whose CPU code paths are already chosen."""


def trains_on_cpu(accelerator: str) -> bool:
    """Whether a stage with this `trainer.accelerator` trains on the CPU: `cpu`, or `auto` where
    torch sees no GPU."""
    if accelerator == "cpu":
        return True
    if accelerator != "auto":
        return False  # gpu, cuda, mps, ...: Lightning refuses it where there is none
    import torch

    return not (torch.cuda.is_available() or torch.backends.mps.is_available())


def pin_before_torch(mode: Mode) -> None:
    """Set the variables ATen and MKL read on first use; a no-op in `fast` mode."""
    os.environ.update(PINNED_ENV[mode])


def configure(mode: Mode, threads: int) -> None:
    """Apply `mode` to this process's torch: threads (0 keeps torch's), oneDNN, and a check."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    torch.backends.mkldnn.enabled = mode == "fast"
    if mode == "fast":
        return
    wanted = {"aten_capability": _CAPABILITY[mode], "mkl_branch": "COMPATIBLE"}
    wrong = {k: v for k, v in in_force().items() if v not in (wanted[k], "unknown")}
    if wrong:
        raise NumericsError(
            f"trainer.numerics is {mode!r}, which needs {wanted}, but this process runs {wrong}. "
            f"ATen and MKL choose their code paths on first use: run the stage as `python -m hw4 "
            f"<stage>` (it pins them from params first) or set {PINNED_ENV[mode]} before Python "
            f"starts. On a CPU without AVX2, portable_avx2 cannot run: use portable."
        )


def in_force() -> dict[str, str]:
    """The ATen capability and MKL branch this process computes with."""
    import torch

    return {"aten_capability": torch.backends.cpu.get_cpu_capability(), "mkl_branch": _mkl_branch()}


def _mkl() -> ctypes.CDLL | None:
    """torch's statically linked MKL, whose service functions libtorch_cpu exports."""
    import torch

    lib = Path(torch.__file__).parent / "lib" / "libtorch_cpu.so"
    try:
        return ctypes.CDLL(str(lib))
    except OSError:
        return None


def _mkl_branch() -> str:
    lib = _mkl()
    get = getattr(lib, "mkl_serv_cbwr_get", None)
    if get is None:
        return "unknown"  # a torch without MKL (aarch64, say), or MKL's internals renamed
    get.restype, get.argtypes = ctypes.c_int, [ctypes.c_int]
    branch = get(_MKL_CBWR_BRANCH)
    return "COMPATIBLE" if branch == _MKL_CBWR_COMPATIBLE else f"auto ({branch})"


def _mkl_version() -> str:
    lib = _mkl()
    fn = getattr(lib, "MKL_Get_Version_String", None)
    if fn is None:
        return "none"
    buf = ctypes.create_string_buffer(256)
    fn(buf, len(buf))
    return buf.value.decode(errors="replace").split("-Product")[0].replace("Intel(R) oneAPI Math Kernel Library Version ", "")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def provenance(mode: Mode) -> dict[str, str]:
    """What a number computed in this process depends on, beside code, data and seed."""
    import torch

    info = {
        "numerics.mode": mode,
        "cpu.model": cpu_model(),
        "cpu.cores": str(os.cpu_count()),
        "cpu.threads": str(torch.get_num_threads()),
        "cpu.aten_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu.mkl_branch": _mkl_branch(),
        "version.mkl": _mkl_version(),
        "version.onednn": _onednn_version(),
        "cpu.onednn": "on" if torch.backends.mkldnn.enabled else "off",
    }
    if torch.cuda.is_available():
        info.update({
            "gpu.name": torch.cuda.get_device_name(0),
            "gpu.count": str(torch.cuda.device_count()),
            "version.cuda": str(torch.version.cuda),
            "version.cudnn": str(torch.backends.cudnn.version()),
        })
    return info


def _onednn_version() -> str:
    import torch

    # torch's build summary has a line "Intel(R) MKL-DNN v3.12.0 (Git Hash ...)"
    found = re.search(r"(?:MKL-DNN|oneDNN) v(\d[\w.]*)", torch.__config__.show())
    return found.group(1) if found else "none"
