"""RowConv1d among the rest of PyTorch: torch.compile, autocast,
DistributedDataParallel (gloo), torch.save/torch.load, torch.export."""
import io
import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch import nn

import rowconv_ext
from rowconv_ext import RowConv1d


class TemporalBlock(nn.Module):
    """A causal residual block over (B, C, H, W) with per-row weights."""

    def __init__(self, rows, channels, kernel_size=3, dilation=2):
        super().__init__()
        self.conv1 = RowConv1d(rows, channels, channels, kernel_size, padding="causal", dilation=dilation)
        self.conv2 = RowConv1d(rows, channels, channels, kernel_size, padding="causal", dilation=dilation)

    def forward(self, x):
        return x + self.conv2(F.gelu(self.conv1(x)))


def _reference_block(block, x):
    """The same block from stock PyTorch: the grouped conv1d on the transposed layout."""
    B, C, H, W = x.shape

    def conv(m, x):
        y2 = m.to_grouped_conv1d()(x.transpose(1, 2).reshape(B, H * C, W))
        return y2.reshape(B, H, C, -1).transpose(1, 2)

    return x + conv(block.conv2, F.gelu(conv(block.conv1, x)))


@pytest.mark.slow
def test_compile_fullgraph_model_forward_and_backward():
    torch._dynamo.reset()
    torch.manual_seed(0)
    block = TemporalBlock(4, 6).double()
    compiled = torch.compile(block, fullgraph=True)
    for seed in (1, 2):
        x = torch.randn(3, 6, 4, 30, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
        y = compiled(x)
        torch.testing.assert_close(y, _reference_block(block, x))
        grads = torch.autograd.grad(y.square().sum(), list(block.parameters()))
        ref = torch.autograd.grad(block(x).square().sum(), list(block.parameters()))
        for g, r in zip(grads, ref):
            torch.testing.assert_close(g, r)


def test_cpu_autocast_casts_like_conv1d():
    torch.manual_seed(3)
    module = RowConv1d(3, 4, 5, 3, padding=1)
    x = torch.randn(2, 4, 3, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = module(x)
        stock = F.conv1d(x[:, :, 0], module.weight[0], module.bias[0], padding=1)
    assert y.dtype == stock.dtype == torch.bfloat16
    ref = rowconv_ext.reference_row_conv1d(*(t.detach().bfloat16().double() for t in (x, module.weight, module.bias)),
                                           padding=1)
    # one bfloat16 rounding of a float32 sum of 12 products
    torch.testing.assert_close(y.double(), ref, rtol=2**-7, atol=1e-5)
    y.float().sum().backward()
    assert module.weight.grad.dtype == torch.float32  # grads reach the float32 parameters
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=False):
        assert module(x).dtype == torch.float32


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU (autocast on CUDA)")
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_cuda_autocast_casts_like_conv1d(dtype):
    module = RowConv1d(3, 4, 5, 3, padding=1).cuda()
    x = torch.randn(2, 4, 3, 16, device="cuda")
    with torch.autocast("cuda", dtype=dtype):
        assert module(x).dtype == F.conv1d(x[:, :, 0], module.weight[0]).dtype == dtype


def test_save_and_load_whole_module_and_state_dict():
    torch.manual_seed(4)
    block = TemporalBlock(3, 4)
    x = torch.randn(2, 4, 3, 20)
    buffer = io.BytesIO()
    torch.save(block, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)  # a pickled module is code, not weights only
    torch.testing.assert_close(loaded(x), block(x), rtol=0, atol=0)
    buffer = io.BytesIO()
    torch.save(block.state_dict(), buffer)
    buffer.seek(0)
    fresh = TemporalBlock(3, 4)
    fresh.load_state_dict(torch.load(buffer, weights_only=True))
    torch.testing.assert_close(fresh(x), block(x), rtol=0, atol=0)


def test_export_of_the_module_and_of_its_grouped_conv1d():
    torch.manual_seed(5)
    module = RowConv1d(3, 4, 4, 3, padding="causal", dilation=2)
    x = torch.randn(2, 4, 3, 12)
    ours = torch.export.export(module, (x,))
    assert "rowconv.row_conv1d" in str(ours.graph)
    torch.testing.assert_close(ours.module()(x), module(x))
    # to_grouped_conv1d: a graph of stock ops only, for runtimes without this package
    grouped = module.to_grouped_conv1d()
    x2 = x.transpose(1, 2).reshape(2, 12, 12)
    exported = torch.export.export(grouped, (x2,))
    assert "rowconv" not in str(exported.graph)
    torch.testing.assert_close(exported.module()(x2).reshape(2, 3, 4, -1).transpose(1, 2), module(x))


# torch.jit.script (deprecated in torch 2.13, still how many models ship):
# RowConv1d.forward compiles to the ops themselves, so a scripted model runs,
# differentiates and saves like one of nn.Conv1d.
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_torchscript_model_matches_stock_pytorch_and_survives_save_and_load():
    torch.manual_seed(9)
    block = TemporalBlock(3, 4)
    scripted = torch.jit.script(block)
    x = torch.randn(2, 4, 3, 20, requires_grad=True)
    B, C, H, W = x.shape

    def stock_conv(m, x):  # the causal grouped F.conv1d on the transposed layout, with m's own parameters
        x2 = F.pad(x.transpose(1, 2).reshape(B, H * C, W), (m.dilation[0] * (m.kernel_size[0] - 1), 0))
        y2 = F.conv1d(x2, m.weight.reshape(H * C, C, -1), m.bias.reshape(-1), dilation=m.dilation[0], groups=H)
        return y2.reshape(B, H, C, -1).transpose(1, 2)

    y, want = scripted(x), x + stock_conv(block.conv2, F.gelu(stock_conv(block.conv1, x)))
    torch.testing.assert_close(y, want)
    g = torch.randn_like(y)
    got_grads = torch.autograd.grad(y, [x, scripted.conv1.weight, scripted.conv2.bias], g)
    want_grads = torch.autograd.grad(want, [x, block.conv1.weight, block.conv2.bias], g)
    for got, expected in zip(got_grads, want_grads):
        torch.testing.assert_close(got, expected)
    buffer = io.BytesIO()
    torch.jit.save(scripted, buffer)
    buffer.seek(0)
    torch.testing.assert_close(torch.jit.load(buffer)(x), y, rtol=0, atol=0)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("padding_mode, padding, method", [("reflect", 2, "auto"), ("circular", 1, "fft"),
                                                           ("zeros", (2, 1), "direct")])
def test_torchscript_module_padding_modes_methods_and_unbatched_input(padding_mode, padding, method):
    torch.manual_seed(10)
    module = RowConv1d(3, 4, 6, 5, padding=padding, padding_mode=padding_mode, groups=2, method=method)
    scripted = torch.jit.script(module)
    x = torch.randn(2, 4, 3, 17)
    grouped = module.to_grouped_conv1d()  # stock nn.Conv1d on (B, H*C, W) (after a pad: (2, 1))
    want = grouped(x.transpose(1, 2).reshape(2, 12, 17)).reshape(2, 3, 6, -1).transpose(1, 2)
    # 'fft': an error relative to the norms (tolerance on the largest output)
    atol = 1e-5 * want.abs().max().item() if method == "fft" else None
    torch.testing.assert_close(scripted(x), want, atol=atol, rtol=None if atol is None else 0)
    torch.testing.assert_close(scripted(x[0]), want[0], atol=atol, rtol=None if atol is None else 0)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_torchscript_causal_module_reads_initial_state_and_refuses_what_it_cannot_do():
    # The scripted forward returns one tensor (a layer scripted models
    # compose): chunks read the state the caller carries (the last inputs of
    # the previous chunk); return_final_state and a state for a module that
    # is not causal are clear errors.
    torch.manual_seed(11)
    module = RowConv1d(3, 4, 4, 3, padding="causal", dilation=2)
    scripted = torch.jit.script(module)
    x = torch.randn(2, 4, 3, 30)
    grouped = module.to_grouped_conv1d()
    want = grouped(x.transpose(1, 2).reshape(2, 12, 30)).reshape(2, 3, 4, -1).transpose(1, 2)
    state, chunks = None, []
    for start in range(0, 30, 7):
        chunks.append(scripted(x[..., start:start + 7], state))
        state = x[..., start + 3:start + 7]  # the last dilation * (K - 1) = 4 inputs
    torch.testing.assert_close(torch.cat(chunks, dim=3), want)
    with pytest.raises(torch.jit.Error, match="return_final_state=True is not supported under torch.jit.script"):
        scripted(x, None, True)
    with pytest.raises(torch.jit.Error, match="initial_state needs a causal module"):
        torch.jit.script(RowConv1d(3, 4, 4, 3, padding=1))(x, torch.zeros(2, 4, 3, 2))


# DistributedDataParallel: 2 processes on gloo, each with half the batch,
# against one process with the whole batch.
_STEPS, _BATCH, _LR = 3, 8, 0.05


def _data():
    g = torch.Generator().manual_seed(7)
    return torch.randn(_BATCH, 4, 3, 24, generator=g), torch.randn(_BATCH, 4, 3, 24, generator=g)


def _train(model, x, y):
    opt = torch.optim.SGD(model.parameters(), lr=_LR)
    for _ in range(_STEPS):
        opt.zero_grad()
        F.mse_loss(model(x), y).backward()
        opt.step()


def _ddp_worker(rank, world, init_file, out_file):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        torch.manual_seed(0)
        model = TemporalBlock(3, 4)
        ddp = nn.parallel.DistributedDataParallel(model)
        x, y = _data()
        shard = slice(rank * _BATCH // world, (rank + 1) * _BATCH // world)
        _train(ddp, x[shard], y[shard])
        if rank == 0:
            torch.save(model.state_dict(), out_file)
        dist.barrier()
    finally:
        dist.destroy_process_group()
    # gloo sometimes aborts in its static destructors at interpreter exit
    # ("terminate called without an active exception", about 1 run in 10 on
    # torch 2.13), after all the work above is done: skip them.
    os._exit(0)


@pytest.mark.slow
def test_distributed_data_parallel_equals_one_process(tmp_path):
    out_file = str(tmp_path / "ddp.pt")
    mp.spawn(_ddp_worker, args=(2, str(tmp_path / "init"), out_file), nprocs=2, join=True)
    torch.manual_seed(0)
    single = TemporalBlock(3, 4)
    initial = {k: v.clone() for k, v in single.state_dict().items()}
    _train(single, *_data())
    trained = torch.load(out_file, weights_only=True)
    for name, value in single.state_dict().items():
        assert not torch.equal(value, initial[name])  # training moved it
        # same math, other summation order (two half-batch means averaged)
        torch.testing.assert_close(trained[name], value, rtol=1e-5, atol=1e-6)
