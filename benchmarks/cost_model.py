"""Measures the constants of the cost model that method='auto' uses
(csrc/fft_plan.cpp; docs/design.md, "Choosing the method") on this machine,
as scipy.signal.choose_conv_method(measure=True) measures scipy's.

    GLIBC_TUNABLES=glibc.malloc.mmap_threshold=4294967295:glibc.malloc.trim_threshold=4294967295 \\
        .venv/bin/python benchmarks/cost_model.py [--device cuda] [--install]

Prints the fitted constants (and the line to paste into fft_plan.cpp as the
new defaults), each timed call against the model's prediction, and writes
both to <out>/cost_model_<device>.json. --install also shows the effect:
what 'auto' picks before and after on the calibration shapes.
"""
import argparse
import json
import os
import pathlib
import platform
import subprocess

import torch

import rowconv_ext
from rowconv_ext import method


def _machine():
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    except OSError:
        lscpu = ""
    fields = dict(line.split(":", 1) for line in lscpu.splitlines() if ":" in line)
    return {"model": fields.get("Model name", platform.processor()).strip(),
            "l1d": fields.get("L1d cache", "?").strip(), "threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "mmap_threshold_raised": "mmap_threshold=4294967295" in os.environ.get("GLIBC_TUNABLES", "")}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default=str(pathlib.Path(__file__).parent / "results"))
    parser.add_argument("--install", action="store_true", help="install the constants in this process and "
                        "show what 'auto' picks before and after")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device_type = torch.device(args.device).type
    before = method.cost_constants(device_type)
    constants, samples = method.measure_cost_constants(args.device, repeats=args.repeats)
    print(f"# {_machine()}")
    print(f"{'shape (B,Cin,H,W,Cout,K)':<30} {'method':<7} {'block':>6} {'ms':>9} {'model ms':>9} {'model/ms':>8}")
    for s in samples:
        print(f"{str(s['shape']):<30} {s['method']:<7} {s['block']:>6} {s['seconds'] * 1e3:>9.3f} "
              f"{s['predicted'] * 1e3:>9.3f} {s['predicted'] / s['seconds']:>8.2f}")
    print("constants:", json.dumps(constants))
    print("fft_plan.cpp defaults: {" + ", ".join(f"{constants[k]:.3g}" for k in method.CONSTANT_NAMES) + "}")
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"cost_model_{device_type}.json"
    path.write_text(json.dumps({"machine": _machine(), "constants": constants, "previous": before,
                                "samples": samples}, indent=1, default=list) + "\n")
    print(f"wrote {path}")
    if args.install:
        gen = torch.Generator().manual_seed(1)
        shapes = method.CALIBRATION_SHAPES
        picks_before = []
        for B, cin, H, W, cout, K in shapes:
            x = torch.randn(B, cin, H, W, generator=gen).to(args.device)
            w = torch.randn(H, cout, cin, K, generator=gen).to(args.device)
            picks_before.append(rowconv_ext.choose_method(x, w))
        method.set_cost_constants(constants, device_type)
        gen = torch.Generator().manual_seed(1)
        for shape, old in zip(shapes, picks_before):
            B, cin, H, W, cout, K = shape
            x = torch.randn(B, cin, H, W, generator=gen).to(args.device)
            w = torch.randn(H, cout, cin, K, generator=gen).to(args.device)
            print(f"{str(shape):<30} auto picks {old} before, {rowconv_ext.choose_method(x, w)} after")


if __name__ == "__main__":
    main()
