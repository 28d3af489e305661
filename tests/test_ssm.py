"""Selective scan against the sequential loop, and the Mamba blocks built on it."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from models.mamba import BiMamba, Mamba, MambaLayer, param_groups
from models.ssm import (
    DEFAULT_CHUNK,
    HAS_MAMBA_SSM,
    linear_scan,
    selective_scan,
    selective_scan_chunked,
    selective_scan_ref,
)

F64 = torch.float64
NAMES = ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")


def make_inputs(
    batch: int,
    dim: int,
    n: int,
    length: int,
    b_mode: str,
    c_mode: str,
    *,
    with_z: bool = True,
    with_bias: bool = True,
    with_d: bool = True,
    seed: int = 0,
    dtype: torch.dtype = F64,
    requires_grad: bool = True,
) -> dict[str, torch.Tensor | None]:
    """Random leaves; B/C mode 'ti' (dim, N), 'var' (batch, N, L) or 'g2' (batch, 2, N, L)."""
    g = torch.Generator().manual_seed(seed)

    def rand(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g, dtype=dtype)

    def bc(mode: str) -> torch.Tensor:
        return {
            "ti": lambda: rand(dim, n),
            "var": lambda: rand(batch, n, length),
            "g2": lambda: rand(batch, 2, n, length),
        }[mode]()

    out: dict[str, torch.Tensor | None] = {
        "u": rand(batch, dim, length),
        "delta": rand(batch, dim, length) * 0.5,
        "A": -torch.rand(dim, n, generator=g, dtype=dtype) * 2 - 0.1,
        "B": bc(b_mode),
        "C": bc(c_mode),
        "D": rand(dim) if with_d else None,
        "z": rand(batch, dim, length) if with_z else None,
        "delta_bias": rand(dim) * 0.5 if with_bias else None,
    }
    return leaves(out, dtype) if requires_grad else out


def leaves(
    inputs: dict[str, torch.Tensor | None], dtype: torch.dtype = F64, grad: bool = True
) -> dict[str, torch.Tensor | None]:
    """Fresh leaf copies in ``dtype`` (absent inputs stay None)."""
    return {
        k: None if v is None else v.detach().to(dtype).requires_grad_(grad)
        for k, v in inputs.items()
    }


def outputs_and_grads(
    scan, inputs: dict[str, torch.Tensor | None], softplus: bool, seed: int = 1
) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
    out, last = scan(**inputs, delta_softplus=softplus, return_last_state=True)
    g = torch.Generator().manual_seed(seed)
    w_out = torch.randn(out.shape, generator=g, dtype=out.dtype)
    w_last = torch.randn(last.shape, generator=g, dtype=last.dtype)
    leaves = [v for v in inputs.values() if v is not None]
    grads = torch.autograd.grad((out * w_out).sum() + (last * w_last).sum(), leaves)
    return out, last, list(grads)


LENGTHS = (1, 7, 64, 100, 257)
BC_MODES = (("ti", "ti"), ("var", "var"), ("g2", "g2"), ("var", "ti"), ("ti", "g2"))
OPTIONS = (  # (z, delta_bias, softplus, D)
    (True, True, True, True),
    (False, False, False, False),
    (True, False, True, True),
    (False, True, False, True),
)
CASES = [
    (length, bc, OPTIONS[i % len(OPTIONS)])
    for i, (length, bc) in enumerate(itertools.product(LENGTHS, BC_MODES))
]


@pytest.mark.parametrize(("length", "modes", "options"), CASES)
def test_selective_scan_matches_the_sequential_loop(
    length: int, modes: tuple[str, str], options: tuple[bool, bool, bool, bool]
) -> None:
    with_z, with_bias, softplus, with_d = options
    inputs = make_inputs(
        2, 4, 3, length, *modes, with_z=with_z, with_bias=with_bias, with_d=with_d, seed=length
    )
    ref_out, ref_last, ref_grads = outputs_and_grads(selective_scan_ref, inputs, softplus)
    for chunk in (DEFAULT_CHUNK, 3):  # 3: several recursion levels and leftovers at L >= 64

        def scan(chunk: int = chunk, **kw: object) -> object:
            return selective_scan_chunked(**kw, chunk_size=chunk)  # type: ignore[arg-type]

        out, last, grads = outputs_and_grads(scan, inputs, softplus)
        assert out.dtype == F64 and out.shape == (2, 4, length)
        torch.testing.assert_close(out, ref_out, rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(last, ref_last, rtol=1e-10, atol=1e-10)
        names = [k for k, v in inputs.items() if v is not None]
        for name, got, want in zip(names, grads, ref_grads, strict=True):
            torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-9, msg=f"grad {name}")


@pytest.mark.parametrize("modes", [("ti", "ti"), ("var", "var"), ("g2", "var")])
def test_selective_scan_passes_gradcheck(modes: tuple[str, str]) -> None:
    inputs = make_inputs(1, 4, 2, 7, *modes, seed=3)
    names = [k for k, v in inputs.items() if v is not None]

    def fn(*leaves: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        kw = dict(zip(names, leaves, strict=True))
        return selective_scan_chunked(
            **kw, delta_softplus=True, return_last_state=True, chunk_size=2
        )

    assert torch.autograd.gradcheck(fn, [inputs[k] for k in names])


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("length", [1, 2, 5, 16, 33, 100])
@pytest.mark.parametrize("chunk", [2, 4, 32])
def test_linear_scan_matches_a_loop(reverse: bool, length: int, chunk: int) -> None:
    g = torch.Generator().manual_seed(length * 7 + chunk)
    a = torch.rand(length, 3, 2, generator=g, dtype=F64) * 1.2  # some steps grow
    x = torch.randn(length, 3, 2, generator=g, dtype=F64)
    want = torch.empty_like(x)
    h = torch.zeros_like(x[0])
    for t in range(length - 1, -1, -1) if reverse else range(length):
        h = a[t] * h + x[t]
        want[t] = h
    torch.testing.assert_close(linear_scan(a, x, reverse, chunk), want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("reverse", [False, True])
def test_linear_scan_passes_gradcheck(reverse: bool) -> None:
    g = torch.Generator().manual_seed(5)
    a = torch.rand(11, 3, generator=g, dtype=F64).requires_grad_()
    x = torch.randn(11, 3, generator=g, dtype=F64).requires_grad_()
    assert torch.autograd.gradcheck(lambda a, x: linear_scan(a, x, reverse, 2), (a, x))


def test_float32_and_half_inputs_keep_their_dtype_and_track_float64() -> None:
    inputs = make_inputs(2, 8, 4, 300, "var", "var", seed=9)
    ref = selective_scan_ref(**inputs, delta_softplus=True)
    for dtype, tol in ((torch.float32, 1e-4), (torch.bfloat16, 0.1)):
        cast = leaves(inputs, dtype, grad=False)
        out, last = selective_scan(**cast, delta_softplus=True, return_last_state=True)
        assert out.dtype == dtype and last.dtype == torch.float32
        torch.testing.assert_close(out.double(), ref.detach(), rtol=tol, atol=tol)


def test_strong_decay_and_growth_stay_finite_and_exact() -> None:
    """Huge steps underflow every decay to 0 (no exp of a positive sum, no inf * 0)."""
    inputs = make_inputs(2, 4, 16, 130, "var", "var", with_bias=False, seed=11)
    inputs["delta"] = torch.linspace(0, 60, 130, dtype=F64).expand(2, 4, 130)
    inputs["A"] = -torch.arange(1, 17, dtype=F64).repeat(4, 1)
    for dtype in (F64, torch.float32):
        cast = leaves(inputs, dtype)
        out, _, grads = outputs_and_grads(selective_scan_chunked, cast, softplus=False)
        assert torch.isfinite(out).all() and all(torch.isfinite(g).all() for g in grads)
        ref, _, ref_grads = outputs_and_grads(selective_scan_ref, cast, softplus=False)
        tol = 1e-10 if dtype == F64 else 1e-4
        torch.testing.assert_close(out, ref, rtol=tol, atol=tol)
        for got, want in zip(grads, ref_grads, strict=True):
            torch.testing.assert_close(got, want, rtol=tol, atol=tol)
    grow = make_inputs(1, 2, 3, 90, "var", "var", seed=12)
    grow["A"] = torch.rand(2, 3, dtype=F64) * 0.1  # A > 0: decays above 1, the state grows
    grow = leaves(grow)
    out, _, grads = outputs_and_grads(selective_scan_chunked, grow, softplus=True)
    ref, _, ref_grads = outputs_and_grads(selective_scan_ref, grow, softplus=True)
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-8)
    for got, want in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-7)


def test_non_contiguous_inputs() -> None:
    plain = make_inputs(2, 6, 4, 50, "var", "var", seed=13, requires_grad=False)
    b_t = torch.randn(2, 50, 4, dtype=F64).transpose(1, 2)  # as Mamba's x_proj output arrives
    u_t = torch.randn(50, 6, 2, dtype=F64).transpose(0, 2)
    assert not b_t.is_contiguous() and not u_t.is_contiguous()
    strided = {**plain, "B": b_t, "u": u_t}
    plain = {**plain, "B": b_t.contiguous(), "u": u_t.contiguous()}
    torch.testing.assert_close(selective_scan(**strided), selective_scan_ref(**plain))


def test_cpu_dispatch_runs_the_pytorch_scan() -> None:
    assert isinstance(HAS_MAMBA_SSM, bool)
    inputs = make_inputs(1, 4, 2, 40, "var", "g2", requires_grad=False)
    torch.testing.assert_close(
        selective_scan(**inputs, delta_softplus=True),
        selective_scan_chunked(**inputs, delta_softplus=True),
        rtol=0,
        atol=0,
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"delta": torch.zeros(2, 4, 9)}, "delta"),
        ({"A": torch.zeros(3, 2)}, "A must be"),
        ({"B": torch.zeros(2, 3, 9)}, "B "),
        ({"C": torch.zeros(2, 3, 2, 10)}, "C "),
        ({"C": torch.zeros(2, 0, 2, 10)}, "C "),  # zero groups
        ({"D": torch.zeros(5)}, "D must be"),
        ({"z": torch.zeros(2, 4)}, "z "),
        ({"u": torch.zeros(2, 4, 0), "delta": torch.zeros(2, 4, 0)}, "u must be"),
    ],
)
def test_shape_errors_name_the_tensor(change: dict[str, torch.Tensor], message: str) -> None:
    kw = {
        "u": torch.zeros(2, 4, 10),
        "delta": torch.zeros(2, 4, 10),
        "A": torch.zeros(4, 2),
        "B": torch.zeros(2, 2, 10),
        "C": torch.zeros(4, 2),
        "D": None,
        "z": None,
    }
    kw.update(change)
    with pytest.raises(ValueError, match=message):
        selective_scan(**kw)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- Mamba blocks
def _params_with_grads_everywhere(module: torch.nn.Module, x: torch.Tensor) -> None:
    module(x).square().mean().backward()
    for name, p in module.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_mamba_shapes_and_gradients_reach_every_parameter() -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 37, 8)
    for module in (
        Mamba(8),
        BiMamba(8, combine="sum", d_state=4),
        BiMamba(8, combine="linear"),
        MambaLayer(8, norm="rms"),
        MambaLayer(8, norm="layer", bidirectional=True, combine="linear"),
    ):
        assert module(x).shape == x.shape
        _params_with_grads_everywhere(module, x)


def test_mamba_matches_its_equations_on_the_reference_loop() -> None:
    torch.manual_seed(1)
    m = Mamba(6, d_state=5, d_conv=3, expand=2, dt_rank=2, conv_bias=True, bias=True).double()
    x = torch.randn(2, 23, 6, dtype=F64)
    xz = (x @ m.in_proj.weight.T + m.in_proj.bias).transpose(1, 2)
    u, z = xz[:, :12], xz[:, 12:]
    pad = F.pad(u, (2, 0))  # causal: output t sees inputs t-2..t
    conv = sum(pad[..., k : k + 23] * m.conv1d.weight[:, 0, k, None] for k in range(3))
    u = F.silu(conv + m.conv1d.bias[:, None])
    q = torch.einsum("bdl,rd->brl", u, m.x_proj.weight)
    dt, B, C = q[:, :2], q[:, 2:7], q[:, 7:]
    delta = torch.einsum("brl,dr->bdl", dt, m.dt_proj.weight)
    y = selective_scan_ref(
        u,
        delta,
        -torch.exp(m.A_log),
        B,
        C,
        m.D,
        z=z,
        delta_bias=m.dt_proj.bias,
        delta_softplus=True,
    )
    want = y.transpose(1, 2) @ m.out_proj.weight.T + m.out_proj.bias
    torch.testing.assert_close(m(x), want, rtol=1e-10, atol=1e-10)


def test_mamba_is_causal_and_bimamba_is_not() -> None:
    torch.manual_seed(2)
    x = torch.randn(2, 70, 8)
    later = x.clone()
    later[:, 40:] += torch.randn(2, 30, 8)
    causal = Mamba(8)
    with torch.no_grad():
        a, b = causal(x), causal(later)
    torch.testing.assert_close(a[:, :40], b[:, :40], rtol=0, atol=1e-6)
    assert (a[:, 40:] - b[:, 40:]).abs().max() > 1e-3
    both = BiMamba(8)
    with torch.no_grad():
        a, b = both(x), both(later)
    assert (a[:, :40] - b[:, :40]).abs().amax(dim=(0, 2)).min() > 1e-6  # every past step moved


def test_bimamba_backward_block_reads_the_flipped_sequence() -> None:
    torch.manual_seed(3)
    bi = BiMamba(4, combine="sum")
    x = torch.randn(1, 12, 4)
    with torch.no_grad():
        want = bi.forward_block(x) + bi.backward_block(x.flip(1)).flip(1)
        torch.testing.assert_close(bi(x), want)


def test_mamba_initialisation_follows_the_paper() -> None:
    torch.manual_seed(4)
    m = Mamba(40, d_state=16, dt_min=0.002, dt_max=0.05)
    assert m.d_inner == 80 and m.dt_rank == math.ceil(40 / 16)
    dt = F.softplus(m.dt_proj.bias.detach())
    assert dt.min() >= 0.002 * (1 - 1e-5) and dt.max() <= 0.05 * (1 + 1e-5)
    assert dt.min() < 0.004 and dt.max() > 0.025  # spread log-uniformly over the range
    bound = m.dt_rank**-0.5
    assert m.dt_proj.weight.abs().max() <= bound
    torch.testing.assert_close(m.A_log, torch.log(torch.arange(1.0, 17.0)).repeat(80, 1))
    assert m.A_log.dtype == torch.float32 and torch.equal(m.D, torch.ones(80))
    assert m.A_log._no_weight_decay and m.D._no_weight_decay  # type: ignore[attr-defined]
    decay, keep = param_groups(m, 0.1)
    assert {id(p) for p in keep["params"]} == {id(m.A_log), id(m.D)}  # type: ignore[union-attr]
    assert len(decay["params"]) == len(list(m.parameters())) - 2  # type: ignore[arg-type]

    floored = Mamba(8, dt_min=1e-6, dt_max=2e-6, dt_init_floor=1e-3, dt_init="constant")
    torch.testing.assert_close(F.softplus(floored.dt_proj.bias.detach()), torch.full((16,), 1e-3))
    assert torch.all(floored.dt_proj.weight == floored.dt_rank**-0.5)


def test_mamba_state_dict_uses_mamba_ssm_names() -> None:
    keys = set(Mamba(8).state_dict())
    assert keys == {
        "in_proj.weight",
        "conv1d.weight",
        "conv1d.bias",
        "x_proj.weight",
        "dt_proj.weight",
        "dt_proj.bias",
        "A_log",
        "D",
        "out_proj.weight",
    }


def test_chunk_size_below_two_is_refused() -> None:
    inputs = make_inputs(1, 2, 2, 5, "var", "var", requires_grad=False)
    with pytest.raises(ValueError, match="chunk_size"):
        selective_scan_chunked(**inputs, chunk_size=1)
    with pytest.raises(ValueError, match="chunk_size"):
        linear_scan(torch.ones(5, 2), torch.ones(5, 2), chunk_size=1)


def test_constructor_errors() -> None:
    with pytest.raises(ValueError, match="dt_init"):
        Mamba(8, dt_init="zeros")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="combine"):
        BiMamba(8, combine="mean")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="norm"):
        MambaLayer(8, norm="batch")  # type: ignore[arg-type]
