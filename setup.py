"""Build of rowconv_ext._C: a CPU extension, or a CPU+CUDA one.

Which one is built:
  FORCE_CUDA=1         CUDA build, even on a machine without a GPU (needs a CUDA
                       build of torch and a CUDA toolkit: CUDA_HOME or nvcc).
  ROWCONV_FORCE_CPU=1  CPU-only build, even where CUDA is usable.
  neither              CUDA build when torch sees a GPU and a toolkit is found,
                       CPU-only otherwise.
Other knobs: TORCH_CUDA_ARCH_LIST (default "8.0;9.0+PTX"), MAX_JOBS,
ROWCONV_DEBUG_INFO=1 (compile with Python's -g; default -g0),
ROWCONV_BUILD_BASE (default "build"): where the objects go, so that a CUDA
build against another torch (scripts/cuda_build.sh) does not make the next
CPU build start over.
"""
import glob
import os

from setuptools import setup
from torch.utils import cpp_extension

ROOT = os.path.dirname(os.path.abspath(__file__))


def _flag(name):
    return os.environ.get(name, "0").lower() in ("1", "true", "yes", "on")


def _want_cuda():
    import torch

    if _flag("ROWCONV_FORCE_CPU"):
        return False
    if _flag("FORCE_CUDA"):
        if torch.version.cuda is None or cpp_extension.CUDA_HOME is None:
            raise RuntimeError(
                "FORCE_CUDA=1 needs a CUDA build of torch (found torch "
                f"{torch.__version__}) and a CUDA toolkit (CUDA_HOME={cpp_extension.CUDA_HOME})"
            )
        return True
    return torch.cuda.is_available() and cpp_extension.CUDA_HOME is not None


def _no_debug_info():
    return [] if _flag("ROWCONV_DEBUG_INFO") else ["-g0"]


def _sources(pattern):
    return sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, pattern)))


def _emulation_extension():
    """The CUDA kernels run on the CPU by the emulator, for the tests: the
    argument checks, the emulated ops and a module stub (no TORCH_LIBRARY of
    the main namespace, which only _C may register)."""
    return cpp_extension.CppExtension(
        "rowconv_ext._cuda_emulation",
        ["csrc/row_conv1d_checks.cpp", "csrc/row_conv1d_fft.cpp", "csrc/fft_plan.cpp",
         "csrc/python_module.cpp"] + _sources("csrc/cuda_emulation/*.cpp"),
        define_macros=[("ROWCONV_MODULE", "_cuda_emulation")],
        extra_compile_args={"cxx": ["-std=c++20", "-O2", "-fvisibility=hidden", "-pthread"] + _no_debug_info()},
        extra_link_args=["-pthread"],
    )


def _extension():
    sources = _sources("csrc/*.cpp") + _sources("csrc/cpu/*.cpp")
    # at::parallel_for is an inline `#pragma omp parallel` in torch's OpenMP
    # builds: without -fopenmp it silently runs on one thread.
    # -ffp-contract=fast: let the micro-kernels' a * b + c become FMAs (ISO
    # C++ modes turn contraction off).
    # -std=c++20: the emulator's std::barrier; torch before 2.13 defaults to C++17.
    # -g0: no debug information (Python's flags ask for -g), which took a
    # quarter of the compile time of the micro-kernels' many template
    # instantiations (130 -> 104 s) and made their object 15x larger;
    # ROWCONV_DEBUG_INFO=1 keeps it.
    cxx = ["-std=c++20", "-O3", "-fvisibility=hidden", "-fopenmp", "-ffp-contract=fast"] + _no_debug_info()
    link = ["-fopenmp"]
    fast_calls = [("ROWCONV_FAST_CALLS", "1")]  # python_module.cpp: python_fast_calls.cpp's entries
    if not _want_cuda():
        return cpp_extension.CppExtension(
            "rowconv_ext._C", sources, define_macros=fast_calls, extra_compile_args={"cxx": cxx},
            extra_link_args=link)
    os.environ.setdefault("TORCH_CUDA_ARCH_LIST", "8.0;9.0+PTX")
    nvcc = ["-O3", "--expt-relaxed-constexpr", "-lineinfo", "-Xptxas=-v"]
    return cpp_extension.CUDAExtension(
        "rowconv_ext._C",
        sources + _sources("csrc/cuda/*.cu"),
        define_macros=[("ROWCONV_WITH_CUDA", "1")] + fast_calls,
        extra_compile_args={"cxx": cxx, "nvcc": nvcc},
        extra_link_args=link,
    )


class BuildEachInItsOwnFolder(cpp_extension.BuildExtension):
    """Objects (and ninja's logs) of each extension in a folder of its own:
    _C and _cuda_emulation compile four sources with different macros, and in
    one folder each build recompiled what the other had built."""

    def build_extension(self, ext):
        base = self.build_temp
        self.build_temp = os.path.join(base, ext.name.rsplit(".", 1)[-1])
        try:
            super().build_extension(ext)
        finally:
            self.build_temp = base


setup(
    ext_modules=[_extension(), _emulation_extension()],
    cmdclass={"build_ext": BuildEachInItsOwnFolder},
    options={"build": {"build_base": os.environ.get("ROWCONV_BUILD_BASE", "build")}},
)
