"""Forward-mode AD, torch.func transforms and vmap, against the same
transforms of stock PyTorch (the grouped F.conv1d reference) or against a loop
of stock calls: every transform gives PyTorch's numbers, to any order."""
import weakref
import zlib

import pytest
import torch
import torch.autograd.forward_ad as fwAD
from torch import func

import rowconv_ext
from conftest import SWEEP, Conv, assert_every_derivative, make_inputs

ops = torch.ops.rowconv
ref = rowconv_ext.reference_row_conv1d

CONFIGS = [
    Conv(2, 4, 3, 11, 6, 3, stride=2, padding=(1, 2), dilation=2, groups=2),
    Conv(1, 3, 2, 10, 3, 4, padding="same", groups=3),
    Conv(2, 2, 1, 8, 2, 3, padding="causal", dilation=3, bias=False),
]
# complex128: gradcheck builds the Jacobians of the real and imaginary parts
# (four times the real work; the first config took 20-35 s a test). The same
# arguments (stride, uneven padding, dilation, groups) on fewer elements.
COMPLEX_CONFIGS = [Conv(1, 4, 2, 9, 4, 3, stride=2, padding=(1, 2), dilation=2, groups=2)] + CONFIGS[1:]
REAL_AND_COMPLEX = [pytest.param(c, torch.float64, id=f"{c}-float64") for c in CONFIGS] + [
    pytest.param(c, torch.complex128, id=f"{c}-complex128") for c in COMPLEX_CONFIGS]


def _inputs(cfg, dtype=torch.float64, seed=0):
    x, w, b, gy = make_inputs(cfg, dtype, seed=seed)
    return x, w, b, gy


def _close(a, b):
    # float64 throughout; both sides sum the same products in different orders
    torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("cfg", SWEEP[::4], ids=str)
def test_gradcheck_forward_and_batched_over_the_sweep(cfg):
    """gradcheck and gradgradcheck with forward AD, reverse AD, batched grads
    (vmap over the backward) and forward-over-reverse. fast_mode compares a
    random projection of the Jacobian with finite differences, which keeps
    the sweep affordable; the small CONFIGS below run the full Jacobian."""
    x, w, b, _ = _inputs(cfg, seed=zlib.crc32(str(cfg).encode()))
    leaves = tuple(t.requires_grad_() for t in (x, w) + ((b,) if b is not None else ()))

    def f(*args):
        return rowconv_ext.row_conv1d(*args, **cfg.kwargs)

    assert_every_derivative(f, leaves, fast_mode=True)


@pytest.mark.parametrize("cfg, dtype", REAL_AND_COMPLEX)
def test_gradcheck_full_jacobian_all_modes(cfg, dtype):
    """complex128: gradcheck checks PyTorch's conjugate convention (the
    Wirtinger derivatives of the real and imaginary parts of the output)."""
    x, w, b, _ = _inputs(cfg, dtype)
    leaves = tuple(t.requires_grad_() for t in (x, w) + ((b,) if b is not None else ()))

    def f(*args):
        return rowconv_ext.row_conv1d(*args, **cfg.kwargs)

    assert_every_derivative(f, leaves)


@pytest.mark.parametrize("cfg, dtype", [p for p in REAL_AND_COMPLEX if p.values[0] not in CONFIGS[2:]])
def test_backward_ops_forward_ad(cfg, dtype):
    """Each backward op on its own: forward AD, batched grads, second order."""
    x, w, b, gy = _inputs(cfg, dtype)
    left, right = cfg.pads()
    conv = (cfg.stride, left, right, cfg.dilation, cfg.groups)
    x, w, gy = (t.requires_grad_() for t in (x, w, gy))
    for fn, args in [
        (lambda g, w: ops.row_conv1d_grad_input(g, w, cfg.W, *conv), (gy, w)),
        (lambda g, x: ops.row_conv1d_grad_weight(g, x, cfg.K, *conv), (gy, x)),
        (ops.row_conv1d_grad_bias, (gy,)),
    ]:
        assert torch.autograd.gradcheck(fn, args, check_forward_ad=True, check_batched_grad=True,
                                        check_batched_forward_grad=True)
        assert torch.autograd.gradgradcheck(fn, args, check_fwd_over_rev=True, check_batched_grad=True)


@pytest.mark.parametrize("cfg", CONFIGS, ids=str)
def test_dual_tensors_give_the_reference_tangent(cfg):
    x, w, b, _ = _inputs(cfg)
    tangents = [torch.randn_like(t) for t in (x, w)] + ([torch.randn_like(b)] if b is not None else [])
    outs = []
    for fn in (rowconv_ext.row_conv1d, ref):
        with fwAD.dual_level():
            duals = [fwAD.make_dual(p, t) for p, t in zip((x, w, b), tangents)]
            y = fn(*duals, **cfg.kwargs) if b is not None else fn(*duals, None, **cfg.kwargs)
            outs.append(fwAD.unpack_dual(y).tangent)
    assert outs[0].abs().sum() > 0  # the tangent the bug report got as zeros
    _close(outs[0], outs[1])


@pytest.mark.parametrize("cfg", CONFIGS, ids=str)
def test_torch_func_transforms_match_the_reference(cfg):
    x, w, b, gy = _inputs(cfg, seed=1)
    args = (x, w) + ((b,) if b is not None else ())  # the transforms take tensors only

    def out(fn):
        return lambda x, w, b=None: fn(x, w, b, **cfg.kwargs)

    def loss(fn):
        # a non-quadratic loss so that second derivatives involve every op
        return lambda *a: (out(fn)(*a) ** 3).sum()

    everything = tuple(range(len(args)))
    for transform in (
        lambda f: func.grad(loss(f), argnums=everything)(*args),
        lambda f: func.vjp(out(f), *args)[1](gy),
        lambda f: func.jvp(out(f), args, tuple(torch.randn_like(t, generator=torch.Generator().manual_seed(i))
                                               for i, t in enumerate(args)))[1],
        lambda f: func.jacrev(out(f), argnums=1)(*args),
        lambda f: func.jacfwd(out(f), argnums=0)(*args),
        lambda f: func.hessian(loss(f), argnums=1)(*args),
        lambda f: func.jacrev(func.jacfwd(loss(f), argnums=0), argnums=1)(*args),
        lambda f: func.jacfwd(func.jacfwd(loss(f), argnums=1), argnums=0)(*args),
        lambda f: func.jacfwd(func.jacrev(loss(f), argnums=everything), argnums=everything)(*args),
    ):
        ours, theirs = transform(rowconv_ext.row_conv1d), transform(ref)
        for o, t in zip(torch.utils._pytree.tree_leaves(ours), torch.utils._pytree.tree_leaves(theirs)):
            _close(o, t)


def test_functional_call_on_the_module():
    torch.manual_seed(0)
    module = rowconv_ext.RowConv1d(3, 4, 6, 3, padding="same", groups=2, dtype=torch.float64)
    x = torch.randn(2, 4, 3, 12, dtype=torch.float64)
    params = {k: v.detach() for k, v in module.named_parameters()}

    def loss_ours(p, x):
        return func.functional_call(module, p, (x,)).tanh().sum()

    def loss_ref(p, x):
        return ref(x, p["weight"], p["bias"], padding="same", groups=2).tanh().sum()

    for transform in (func.grad, func.jacrev, func.jacfwd, func.hessian):
        ours, theirs = transform(loss_ours)(params, x), transform(loss_ref)(params, x)
        for o, t in zip(torch.utils._pytree.tree_leaves(ours), torch.utils._pytree.tree_leaves(theirs)):
            _close(o, t)
    # per-sample gradients: vmap over the batch of grad
    per_sample = func.vmap(func.grad(lambda p, xi: loss_ours(p, xi[None])), in_dims=(None, 0))(params, x)
    for i in range(x.shape[0]):
        expect = func.grad(lambda p: loss_ref(p, x[i:i + 1]))(params)
        for k in params:
            _close(per_sample[k][i], expect[k])


VMAP_IN_DIMS = [(0, None, None), (None, 0, 0), (2, 1, None), (1, 0, 0), (None, None, 0)]


@pytest.mark.parametrize("cfg,in_dims", [(c, d) for c in CONFIGS for d in VMAP_IN_DIMS if c.bias or d[2] is None],
                         ids=str)
def test_vmap_row_conv1d_against_a_loop(cfg, in_dims, no_vmap_fallback):
    n = 3
    x, w, b, _ = _inputs(cfg, seed=2)
    stacked = [None if t is None else torch.stack([torch.randn_like(t) for _ in range(n)], d) if d is not None else t
               for t, d in zip((x, w, b), in_dims)]
    y = func.vmap(lambda *a: rowconv_ext.row_conv1d(*a, **cfg.kwargs), in_dims=in_dims)(*stacked)
    loop = torch.stack([ref(*[t if d is None else t.select(d, i) for t, d in zip(stacked, in_dims)], **cfg.kwargs)
                        for i in range(n)])
    _close(y, loop)


@pytest.mark.parametrize("in_dims", [(0, None), (None, 0), (0, 0), (3, 1)])
@pytest.mark.parametrize("cfg", CONFIGS[:2], ids=str)
def test_vmap_backward_ops_against_a_loop(cfg, in_dims, no_vmap_fallback):
    """Each backward op vmapped over either or both operands, against the
    gradients of the reference computed one problem at a time."""
    n = 3
    x, w, _, gy = _inputs(cfg, seed=3)
    left, right = cfg.pads()
    conv = (cfg.stride, left, right, cfg.dilation, cfg.groups)

    def stack(t, d):
        return t if d is None else torch.stack([torch.randn_like(t) for _ in range(n)], d)

    def pick(t, d, i):
        return t if d is None else t.select(d, i)

    def ref_grads(xi, wi, gi):
        xi, wi = xi.clone().requires_grad_(), wi.clone().requires_grad_()
        return torch.autograd.grad(ref(xi, wi, None, **cfg.kwargs), (xi, wi), gi)

    gys, ws = stack(gy, in_dims[0]), stack(w, in_dims[1])
    gx = func.vmap(lambda g, w: ops.row_conv1d_grad_input(g, w, cfg.W, *conv), in_dims=in_dims)(gys, ws)
    _close(gx, torch.stack([ref_grads(x, pick(ws, in_dims[1], i), pick(gys, in_dims[0], i))[0] for i in range(n)]))

    xs = stack(x, in_dims[1])
    gw = func.vmap(lambda g, x: ops.row_conv1d_grad_weight(g, x, cfg.K, *conv), in_dims=in_dims)(gys, xs)
    _close(gw, torch.stack([ref_grads(pick(xs, in_dims[1], i), w, pick(gys, in_dims[0], i))[1] for i in range(n)]))

    if in_dims[0] is not None:
        gb = func.vmap(ops.row_conv1d_grad_bias, in_dims=(in_dims[0],))(gys)
        _close(gb, torch.stack([pick(gys, in_dims[0], i).sum((0, 3)).t() for i in range(n)]))


def test_vmap_of_jacrev_and_jacfwd_nested(no_vmap_fallback):
    cfg = CONFIGS[0]
    x, w, b, _ = _inputs(cfg, seed=4)
    xs = torch.randn(2, *x.shape, dtype=x.dtype)

    def jac(fn):
        return func.vmap(func.jacfwd(func.jacrev(lambda w, x: (fn(x, w, b, **cfg.kwargs) ** 2).sum())),
                         in_dims=(None, 0))(w, xs)

    _close(jac(rowconv_ext.row_conv1d), jac(ref))


@pytest.mark.slow
def test_compile_fullgraph_with_torch_func():
    torch._dynamo.reset()
    cfg = CONFIGS[0]
    x, w, b, _ = _inputs(cfg, seed=5)
    xs = torch.randn(3, *x.shape, dtype=x.dtype)

    def per_sample_grads(fn):
        def g(w, b, xs):
            return func.vmap(func.grad(lambda w, b, xi: fn(xi, w, b, **cfg.kwargs).tanh().sum(),
                                       argnums=(0, 1)), in_dims=(None, None, 0))(w, b, xs)
        return g


    def tangent(fn):
        def t(x, w, b, tx):
            return func.jvp(lambda x: fn(x, w, b, **cfg.kwargs), (x,), (tx,))[1]
        return t

    def hessian(fn):
        def h(x, w, b):
            return func.hessian(lambda w: (fn(x, w, b, **cfg.kwargs) ** 3).sum())(w)
        return h

    for make, args in ((per_sample_grads, (w, b, xs)), (tangent, (x, w, b, torch.randn_like(x))),
                       (hessian, (x, w, b))):
        torch._dynamo.reset()
        compiled = torch.compile(make(rowconv_ext.row_conv1d), fullgraph=True)
        for o, t in zip(torch.utils._pytree.tree_leaves(compiled(*args)),
                        torch.utils._pytree.tree_leaves(make(ref)(*args))):
            _close(o, t)


# The eager entry (python_fast_calls.cpp, _forward_fast) steps below the
# Autograd key where nothing is to be differentiated: whatever must see the
# op (tangents, transforms, modes, fake tensors) still does.

def _eager_inputs():
    g = torch.Generator().manual_seed(7)
    x = torch.randn(2, 3, 2, 12, generator=g, dtype=torch.float64)
    return x, torch.randn(2, 4, 3, 3, generator=g, dtype=torch.float64), torch.randn(2, 4, generator=g,
                                                                                     dtype=torch.float64)


def test_eager_entry_gives_pytorchs_result_and_declines_what_it_does_not_take():
    from rowconv_ext._C import _forward_fast
    x, w, b = _eager_inputs()
    args = (x, w, b, 1, 2, 0, 1, 1, 0, None)  # causal, K 3
    with torch.no_grad():
        y = _forward_fast(False, *args)
        _close(y, ref(x, w, b, padding="causal"))
        y_state, state = _forward_fast(True, *args)
        assert torch.equal(y_state, y) and torch.equal(state, x[..., -2:])
        # nothing is kept alive past its last reference (a first version
        # leaked both results of the pair)
        alive = [weakref.ref(t) for t in (y, y_state, state)]
        del y, y_state, state
        assert [r() for r in alive] == [None, None, None]
    # None (torch.ops' path): a tangent, reverse mode under autocast,
    # arguments of other types
    w_leaf = w.clone().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert _forward_fast(False, x, w_leaf, b, 1, 2, 0, 1, 1, 0, None) is None
    with fwAD.dual_level():
        assert _forward_fast(False, fwAD.make_dual(x, torch.randn_like(x)), w, b, 1, 2, 0, 1, 1, 0, None) is None
    assert _forward_fast(False, x, w, b, 1.0, 2, 0, 1, 1, 0, None) is None
    assert _forward_fast(False, x, w) is None


@pytest.mark.parametrize("with_state", [False, True], ids=["y", "y_and_state"])
def test_tangents_and_vmap_under_no_grad_match_the_reference(with_state):
    x, w, b = _eager_inputs()
    tx = torch.randn_like(x)

    def conv(fn, x):
        if fn is ref:
            return ref(x, w, b, padding="causal")
        out = fn(x, w, b, padding="causal", return_final_state=with_state)
        return out[0] if with_state else out

    with torch.no_grad():  # forward-mode AD does not depend on grad mode
        tangents = []
        for fn in (rowconv_ext.row_conv1d, ref):
            with fwAD.dual_level():
                tangents.append(fwAD.unpack_dual(conv(fn, fwAD.make_dual(x, tx))).tangent)
        assert tangents[0] is not None and tangents[0].abs().sum() > 0
        _close(tangents[0], tangents[1])
        xs = torch.randn(3, *x.shape, dtype=x.dtype)
        _close(func.vmap(lambda xi: conv(rowconv_ext.row_conv1d, xi))(xs),
               torch.stack([conv(ref, xi) for xi in xs]))


@pytest.mark.parametrize("kind", ["torch_function", "torch_dispatch"])
@pytest.mark.parametrize("with_state", [False, True], ids=["y", "y_and_state"])
def test_modes_and_fake_tensors_see_the_op_under_no_grad(kind, with_state):
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.overrides import TorchFunctionMode
    from torch.utils._python_dispatch import TorchDispatchMode
    x, w, b = _eager_inputs()
    op = ops.row_conv1d_with_final_state.default if with_state else ops.row_conv1d.default
    seen = []

    def record(self, func, types, args=(), kwargs=None):
        seen.append(func)
        return func(*args, **(kwargs or {}))

    base = TorchFunctionMode if kind == "torch_function" else TorchDispatchMode
    with torch.no_grad():
        with type("Record", (base,), {f"__{kind}__": record})():
            out = rowconv_ext.row_conv1d(x, w, b, padding="causal", return_final_state=with_state)
        assert op in seen or op.overloadpacket in seen  # (a function mode sees torch.ops' packet)
        _close(out[0] if with_state else out, ref(x, w, b, padding="causal"))
        with FakeTensorMode() as mode:
            out = rowconv_ext.row_conv1d(mode.from_tensor(x), mode.from_tensor(w), mode.from_tensor(b),
                                         padding="causal", return_final_state=with_state)
            assert (out[0] if with_state else out).shape == (2, 4, 2, 12)


# Plain reverse mode through the eager entry: a C++ autograd node
# (row_conv1d_eager_autograd.cpp) instead of the Python autograd.Function.
# Everything autograd offers around a node must hold for it as for PyTorch's.

def _recorded_by_the_eager_entry(y):
    return "RecordedRowConv1d" in y.grad_fn.name()


EAGER_TRAINING = [
    pytest.param(Conv(2, 4, 3, 11, 6, 3, stride=2, padding=(1, 2), dilation=2, groups=2), False, False, id="strided"),
    pytest.param(Conv(2, 3, 2, 9, 4, 3, padding="causal", dilation=2), True, False, id="causal-prefix"),
    pytest.param(Conv(2, 3, 2, 9, 4, 3, padding="causal", dilation=2, bias=False), False, True, id="causal-state"),
    pytest.param(Conv(1, 2, 2, 3, 2, 4, padding="causal"), True, True, id="prefix-state-shorter-than-state"),
]


@pytest.mark.parametrize("cfg, with_prefix, with_state", EAGER_TRAINING)
@pytest.mark.parametrize("dtype", [torch.float64, torch.complex128])
def test_eager_reverse_mode_gives_every_derivative_of_the_reference(cfg, with_prefix, with_state, dtype):
    x, w, b, _ = _inputs(cfg, dtype)
    g = torch.Generator().manual_seed(3)
    prefix = None
    if with_prefix:
        prefix = torch.randn(*x.shape[:3], cfg.dilation * (cfg.K - 1), generator=g, dtype=dtype)
    leaves = [t.requires_grad_() for t in (x, w, b, prefix) if t is not None]

    def ours(*args):
        it = iter(args)
        x, w = next(it), next(it)
        b = next(it) if cfg.bias else None
        p = next(it) if with_prefix else None
        return rowconv_ext.row_conv1d(x, w, b, **cfg.kwargs, initial_state=p, return_final_state=with_state)

    def theirs(*args):  # the reference on prefix ++ x (or the zero padding), and its tail
        it = iter(args)
        x, w = next(it), next(it)
        b = next(it) if cfg.bias else None
        p = next(it) if with_prefix else None
        if p is None:
            y = ref(x, w, b, **cfg.kwargs)
            v = torch.cat([x.new_zeros(*x.shape[:3], cfg.dilation * (cfg.K - 1)), x], 3) if with_state else x
        else:
            v = torch.cat([p, x], 3)
            y = ref(v, w, b, **{**cfg.kwargs, "padding": "valid"})
        return (y, v[..., v.shape[3] - cfg.dilation * (cfg.K - 1):]) if with_state else y

    out = ours(*leaves)
    assert _recorded_by_the_eager_entry(out[0] if with_state else out)
    outs, refs = torch.utils._pytree.tree_leaves(out), torch.utils._pytree.tree_leaves(theirs(*leaves))
    cotangents = [torch.randn(o.shape, generator=g, dtype=dtype) for o in outs]
    for o, r in zip(outs, refs):
        _close(o, r)
    # first and second order against the reference's autograd
    grads = torch.autograd.grad(outs, leaves, cotangents, create_graph=True)
    ref_grads = torch.autograd.grad(refs, leaves, cotangents, create_graph=True)
    for a, r in zip(grads, ref_grads):
        _close(a, r)
    # (the bias's gradient does not depend on the leaves: not differentiated)
    pairs = [(a, r, torch.randn(a.shape, generator=g, dtype=dtype))
             for a, r in zip(grads, ref_grads) if a.requires_grad]
    second = torch.autograd.grad([a for a, _, _ in pairs], leaves, [p for _, _, p in pairs], allow_unused=True,
                                 materialize_grads=True)
    ref_second = torch.autograd.grad([r for _, r, _ in pairs], leaves, [p for _, _, p in pairs], allow_unused=True,
                                     materialize_grads=True)
    for a, r in zip(second, ref_second):
        _close(a, r)
    # without create_graph (the backward's ops below Autograd), and for some
    # of the operands (the node computes what is asked)
    for partial in (leaves, [leaves[0], leaves[-1]], [leaves[1]]):
        for a, r in zip(torch.autograd.grad(outs, partial, cotangents, retain_graph=True),
                        torch.autograd.grad(refs, partial, cotangents, retain_graph=True)):
            _close(a, r)
    if dtype == torch.float64:  # (complex: the same formulas, the grads above cover them)
        assert_every_derivative(ours, leaves, fast_mode=True)


def test_eager_reverse_mode_with_only_the_state_used():
    # y's gradient is absent: the node adds only the state's to prefix ++ x's
    cfg = Conv(2, 3, 2, 9, 4, 3, padding="causal", dilation=2)
    x, w, b, _ = _inputs(cfg)
    x.requires_grad_()
    _, state = rowconv_ext.row_conv1d(x, w, b, padding="causal", dilation=2, return_final_state=True)
    assert _recorded_by_the_eager_entry(state)
    cot = torch.randn_like(state)
    expected = torch.zeros_like(x)
    expected[..., -4:] = cot
    _close(torch.autograd.grad(state, x, cot)[0], expected)


def test_eager_reverse_mode_under_autograd_machinery():
    from torch.utils.checkpoint import checkpoint
    cfg = Conv(2, 4, 3, 11, 6, 3, padding=1, groups=2)
    x, w, b, gy = _inputs(cfg)
    leaves = [t.requires_grad_() for t in (x, w, b)]
    expected = torch.autograd.grad(ref(*leaves, **cfg.kwargs), leaves, gy)

    def step():
        return rowconv_ext.row_conv1d(*leaves, **cfg.kwargs)
    # saved-tensor hooks see the node's saved operands (x and weight)
    packed = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: packed.append(t) or t.clone(), lambda t: t):
        y = step()
    assert len(packed) == 2 and _recorded_by_the_eager_entry(y)
    for a, r in zip(torch.autograd.grad(y, leaves, gy), expected):
        _close(a, r)
    # activation checkpointing recomputes the forward through the entry
    y = checkpoint(lambda *t: rowconv_ext.row_conv1d(*t, **cfg.kwargs), *leaves, use_reentrant=False)
    for a, r in zip(torch.autograd.grad(y, leaves, gy), expected):
        _close(a, r)
    # a second backward without retain_graph, and an input changed in place after the forward, raise
    y = step()
    torch.autograd.grad(y, leaves, gy)
    with pytest.raises(RuntimeError, match="second time|freed"):
        torch.autograd.grad(y, leaves, gy)
    x2 = x.detach().clone().requires_grad_()
    x3 = x2 * 1  # (not a leaf: a leaf that requires grad cannot change in place)
    y = rowconv_ext.row_conv1d(x3, w, b, **cfg.kwargs)
    with torch.no_grad():
        x3.mul_(2)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.backward(gy)
    # a tangent on the incoming gradient (forward over reverse) is carried through
    y = step()
    t = torch.randn_like(gy)
    with fwAD.dual_level():
        gx = torch.autograd.grad(y, leaves[0], fwAD.make_dual(gy, t))[0]
        tangent = fwAD.unpack_dual(gx).tangent
    assert tangent is not None
    _close(tangent, torch.autograd.grad(ref(*leaves, **cfg.kwargs), leaves[0], t)[0])
    # under autocast the entry declines: the Python Function records the cast operands
    # (float32 operands: autocast casts only those)
    leaves32 = [t.detach().float().requires_grad_() for t in leaves]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = rowconv_ext.row_conv1d(*leaves32, **cfg.kwargs)
    assert not _recorded_by_the_eager_entry(y) and y.dtype == torch.bfloat16
    y.float().backward(gy.float())
    assert all(t.grad.dtype == torch.float32 for t in leaves32)
