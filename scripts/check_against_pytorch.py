"""Quick check of the installed rowconv_ext against stock PyTorch: forward and
the three gradients against the grouped F.conv1d recipe, then gradcheck and
gradgradcheck, on a few configurations. Exits non-zero on any mismatch."""
import sys

import torch

import rowconv_ext

CONFIGS = [  # (B, Cin, H, W, Cout, K), kwargs
    ((32, 15, 10, 100, 15, 3), dict()),  # the forum shape
    ((4, 6, 5, 151, 6, 5), dict(stride=2, padding=(3, 1), dilation=2, groups=3)),
    ((3, 4, 7, 129, 4, 4), dict(padding="same", groups=4)),
    ((2, 8, 3, 64, 4, 7), dict(padding="causal", dilation=3, groups=2)),
]


def main():
    torch.manual_seed(0)
    ok = True
    print(f"rowconv_ext against stock PyTorch (torch {torch.__version__}, float64)")
    print(f"{'shape (B,Cin,H,W,Cout,K)':28} {'options':62} {'max |err| y, gx, gw, gb':28} gradcheck")
    for (B, cin, H, W, cout, K), kw in CONFIGS:
        groups = kw.get("groups", 1)
        leaves = [torch.randn(s, dtype=torch.float64, requires_grad=True)
                  for s in ((B, cin, H, W), (H, cout, cin // groups, K), (H, cout))]
        y = rowconv_ext.row_conv1d(*leaves, **kw)
        ref = rowconv_ext.reference_row_conv1d(*leaves, **kw)
        gy = torch.randn_like(ref)
        errs = [(y - ref).abs().max().item()] + [
            (a - b).abs().max().item()
            for a, b in zip(torch.autograd.grad(y, leaves, gy), torch.autograd.grad(ref, leaves, gy))]
        small = [t[:2, :, :2, :12].detach().clone().requires_grad_() for t in leaves[:1]] + [
            leaves[1][:2].detach().clone().requires_grad_(), leaves[2][:2].detach().clone().requires_grad_()]

        def f(x, w, b):
            return rowconv_ext.row_conv1d(x, w, b, **kw)

        grad_ok = (torch.autograd.gradcheck(f, small, raise_exception=False)
                   and torch.autograd.gradgradcheck(f, small, raise_exception=False))
        case_ok = max(errs) < 1e-10 and grad_ok
        ok &= case_ok
        print(f"{str((B, cin, H, W, cout, K)):28} {str(kw):62} {', '.join(f'{e:.0e}' for e in errs):28} "
              f"{'pass' if grad_ok else 'FAIL'}{'' if case_ok else '  <-- MISMATCH'}")
    print("all checks passed" if ok else "CHECK FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
