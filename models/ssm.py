"""Mamba's selective scan: one function, the fused CUDA kernel when present, a fast scan otherwise.

``selective_scan`` has the signature and semantics of mamba_ssm's ``selective_scan_fn``
(``mamba_ssm/ops/selective_scan_interface.py``)::

    delta <- softplus(delta + delta_bias)          (each step only if asked)
    h_t    = exp(delta_t * A) * h_{t-1} + delta_t * B_t * u_t      (per channel d, state n)
    y_t    = sum_n h_t[n] * C_t[n] + D * u_t
    out    = y * silu(z)                           (if z is given)

Shapes: ``u, delta, z`` (batch, dim, L); ``A`` (dim, N) real; ``B, C`` each either
(dim, N) (time-invariant), (batch, N, L) (variable) or (batch, G, N, L) (grouped:
channel d reads group ``d // (dim // G)``); ``D, delta_bias`` (dim,). The output has
``u``'s dtype; the scan runs in float32, or in float64 when ``u`` is float64 (mamba_ssm's
reference always uses float32; float64 is what lets tests check gradients tightly).

Dispatch: tensors on CUDA with mamba-ssm installed (the optional ``cuda`` extra) go to the
fused kernel; everything else runs ``selective_scan_chunked``, pure PyTorch.

Why a blocked scan rather than a closed form. The recurrence is memory-bound on a CPU: each
step is one multiply-add over (batch, dim, N) numbers. A Python loop over L steps pays
~5 us of dispatch per step and, below torch's 32k-element grain, runs on one thread. The
closed form "cumulative sum of delta*A in log space, masked lower-triangular exp, matmul"
does T times the arithmetic of the recurrence and materialises (batch, dim, N, T, T);
measured on this 2-core machine (T = 16, 32) it ran 1.4-6x slower than a plain step loop. The
scan here instead splits L into chunks of T steps and runs the recurrence for all chunks
at once (Blelloch-style "reduce, scan the chunk totals, rescan"):

1. walk the T positions of every chunk together (one ``addcmul`` over all chunks per
   position) to get each chunk's end state from a zero start, and multiply the decays
   over each chunk;
2. scan those nc = L // T chunk totals (recursively, the same way) to get the state
   entering each chunk;
3. walk the T positions again from the entering states, writing every h_t.

Leftover steps (L mod T) run as a short loop after (or, in reverse, before) the chunks.
It is the same recurrence in the same order of operations as the sequential loop, so it
is exact to rounding, and it only ever multiplies decays: no exp of a cumulative sum, no
positive exponent, nothing to overflow or to mask (a chunk product that underflows to 0
is the true answer to the precision held).

Chunk size T (default 32). Work is O(L * M) for M = batch * dim * N, about twice the plain
loop's memory traffic (two walks plus one product). Python-level steps: about 2T per
level and ceil(log_T L) levels, plus L mod T leftovers: ~130 for L = 2048, T = 32, instead
of 2048. Each step works on an (L / T, M) slab: a small T gives fewer, fatter steps per level
but more levels and more carry memory; a large T gives more dispatches on thinner slabs
(T = L is the plain loop). Extra
memory: the chunk end states and chunk decays, 2 M L / T numbers (1/16 of the states at
T = 32), on top of the (L, M) state tensor kept for the backward pass. Measured
(bench/bench_ssm.py, chunk sweep): T = 8-64 within 3 % at batch 2, dim 256, L 2048;
at dim 8, L 1024, T = 8-32 within 10 % and T = 64 30 % slower.

Gradients: the (L, batch, dim, N) part (decays, inputs, states, contraction with C) is
one autograd Function, ``_SelectiveCore``, whose backward runs the reverse recurrence
(g_t = dh_t + a_{t+1} g_{t+1}; dL/da_t = g_t h_{t-1}) with the same blocked code and
works in place where it can; the small (batch, dim, L) parts around it (bias, softplus,
D, z) are ordinary autograd. Saved for backward: the decays and the states, 2 L M
numbers, as in mamba's reference. The last state is differentiable too (the kernel's is
not). Double backward is not supported. ``linear_scan`` exposes the bare recurrence
h_t = a_t h_{t-1} + x_t with the same machinery, for other sequence models.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

try:  # optional extra: mamba-ssm's fused kernel (needs CUDA to build and to run)
    from mamba_ssm.ops.selective_scan_interface import selective_scan_fn as _cuda_scan_fn
except ImportError:  # pragma: no cover - depends on the environment
    _cuda_scan_fn = None

DEFAULT_CHUNK = 32
HAS_MAMBA_SSM: bool = _cuda_scan_fn is not None
_CUDA_DTYPES = (torch.float32, torch.float16, torch.bfloat16)

ScanResult = torch.Tensor | tuple[torch.Tensor, torch.Tensor]


# --------------------------------------------------------------------------- linear recurrence
def _walk(
    a: torch.Tensor,
    x: torch.Tensor,
    out: torch.Tensor,
    h: torch.Tensor | None,
    steps: range,
) -> torch.Tensor | None:
    """Step the recurrence over ``steps`` of dim 0, writing ``out``; ``h=None`` means zero state."""
    for t in steps:
        if h is None:
            out[t].copy_(x[t])
        else:
            torch.addcmul(x[t], a[t], h, out=out[t])
        h = out[t]
    return h


def _scan(
    a: torch.Tensor,
    x: torch.Tensor,
    reverse: bool,
    chunk: int,
    h0: torch.Tensor | None = None,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """h_t = a_t * h_prev + x_t along dim 0 (prev = t-1, or t+1 if ``reverse``), from ``h0``.

    No autograd (``_LinearScan`` and ``_SelectiveCore`` wrap it); see the module docstring
    for the scheme. ``out`` may be ``x`` itself: every step reads its input first.
    """
    length = x.shape[0]
    if out is None:
        out = torch.empty_like(x, memory_format=torch.contiguous_format)
    n_chunks = length // chunk
    if n_chunks < 2:
        steps = range(length - 1, -1, -1) if reverse else range(length)
        _walk(a, x, out, h0, steps)
        return out
    n = n_chunks * chunk
    block = slice(length - n, length) if reverse else slice(0, n)
    rest = range(length - n - 1, -1, -1) if reverse else range(n, length)
    inner = range(chunk - 1, -1, -1) if reverse else range(chunk)
    a3 = a[block].unflatten(0, (n_chunks, chunk))
    x3 = x[block].unflatten(0, (n_chunks, chunk))
    h3 = out[block].unflatten(0, (n_chunks, chunk))

    # 1. each chunk's end state from a zero start, and its total decay
    ends = x3[:, inner[0]].clone(memory_format=torch.contiguous_format)
    for t in inner[1:]:
        torch.addcmul(x3[:, t], a3[:, t], ends, out=ends)
    decay = a3.prod(dim=1)
    # 2. state at the end of every chunk, then the state entering each one
    totals = _scan(decay, ends, reverse, chunk, h0)
    entering = torch.empty_like(totals)
    if reverse:
        entering[:-1] = totals[1:]
        entering[-1] = 0 if h0 is None else h0
    else:
        entering[1:] = totals[:-1]
        entering[0] = 0 if h0 is None else h0
    # 3. rescan every chunk from its entering state
    h = entering
    for t in inner:
        torch.addcmul(x3[:, t], a3[:, t], h, out=h3[:, t])
        h = h3[:, t]
    _walk(a, x, out, totals[0] if reverse else totals[-1], rest)
    return out


def _adjoint(
    a: torch.Tensor, grad_h: torch.Tensor, reverse: bool, chunk: int, out: torch.Tensor
) -> torch.Tensor:
    """Total gradient g of every state of the recurrence, given the direct gradients ``grad_h``.

    Forward direction: g_t = dh_t + a_{t+1} g_{t+1}, i.e. a reverse scan of steps 0..L-2 whose
    decays are ``a`` shifted by one, entered from g_{L-1} = dh_{L-1}; mirrored for ``reverse``.
    ``out`` may be ``grad_h`` itself (each step reads its input before writing that position).
    """
    last = 0 if reverse else -1
    out[last] = grad_h[last]
    if len(out) > 1:
        if reverse:
            _scan(a[:-1], grad_h[1:], False, chunk, h0=out[0], out=out[1:])
        else:
            _scan(a[1:], grad_h[:-1], True, chunk, h0=out[-1], out=out[:-1])
    return out


def _times_previous_state(g: torch.Tensor, h: torch.Tensor, reverse: bool) -> torch.Tensor:
    """g_t * h_prev in place (dh_t/da_t = h_prev; the state before the first step is 0)."""
    if reverse:
        g[:-1].mul_(h[1:])
        g[-1].zero_()
    else:
        g[1:].mul_(h[:-1])
        g[0].zero_()
    return g


class _LinearScan(torch.autograd.Function):
    """Autograd for the first-order linear recurrence; backward is the reverse recurrence."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx,
        a: torch.Tensor,
        x: torch.Tensor,
        reverse: bool,
        chunk: int,
    ) -> torch.Tensor:
        a, x = a.contiguous(), x.contiguous()
        h = _scan(a, x, reverse, chunk)
        ctx.save_for_backward(a, h)
        ctx.reverse, ctx.chunk = reverse, chunk  # type: ignore[attr-defined]
        return h

    @staticmethod
    @once_differentiable
    def backward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, grad_h: torch.Tensor
    ) -> tuple[torch.Tensor | None, torch.Tensor, None, None]:
        a, h = ctx.saved_tensors  # type: ignore[attr-defined]
        reverse, chunk = ctx.reverse, ctx.chunk  # type: ignore[attr-defined]
        g = _adjoint(a, grad_h.contiguous(), reverse, chunk, torch.empty_like(h))
        grad_a = None
        if ctx.needs_input_grad[0]:  # type: ignore[attr-defined]
            grad_a = _times_previous_state(g.clone(), h, reverse)
        return grad_a, g, None, None


def linear_scan(
    a: torch.Tensor, x: torch.Tensor, reverse: bool = False, chunk_size: int = DEFAULT_CHUNK
) -> torch.Tensor:
    """States of ``h_t = a_t * h_{t-1} + x_t`` along dim 0 from h = 0, differentiable.

    ``a`` and ``x`` have the same shape (L, ...) with time first; ``reverse`` runs from the
    end (h_t = a_t * h_{t+1} + x_t). ``chunk_size`` is the blocked scan's T (>= 2).
    """
    if a.shape != x.shape:
        raise ValueError(f"linear_scan: a {tuple(a.shape)} and x {tuple(x.shape)} differ")
    if chunk_size < 2:
        raise ValueError(f"linear_scan: chunk_size must be >= 2, got {chunk_size}")
    if x.shape[0] == 0:
        return torch.zeros_like(x)
    return _LinearScan.apply(a, x, reverse, chunk_size)


# --------------------------------------------------------------------------- selective scan
def _check(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None,
    z: torch.Tensor | None,
    delta_bias: torch.Tensor | None,
) -> None:
    """Clear errors for the shape mistakes the fused kernel would report as a crash."""
    if u.dim() != 3 or u.shape[-1] == 0:
        raise ValueError(f"selective_scan: u must be (batch, dim, L >= 1), got {tuple(u.shape)}")
    batch, dim, length = u.shape
    if delta.shape != u.shape:
        raise ValueError(f"selective_scan: delta {tuple(delta.shape)} != u {tuple(u.shape)}")
    if A.dim() != 2 or A.shape[0] != dim:
        raise ValueError(f"selective_scan: A must be (dim={dim}, N), got {tuple(A.shape)}")
    if A.is_complex():
        raise ValueError("selective_scan: complex A is not supported by the PyTorch scan")
    n = A.shape[1]
    for name, m in (("B", B), ("C", C)):
        if m.dim() == 2:
            ok = m.shape == (dim, n)
        elif m.dim() == 3:
            ok = m.shape == (batch, n, length)
        elif m.dim() == 4:
            ok = (
                m.shape[0] == batch
                and m.shape[2:] == (n, length)
                and m.shape[1] >= 1
                and dim % m.shape[1] == 0
            )
        else:
            ok = False
        if not ok:
            raise ValueError(
                f"selective_scan: {name} {tuple(m.shape)} must be (dim={dim}, N={n}), "
                f"(batch={batch}, N, L={length}) or (batch, G, N, L) with G dividing dim"
            )
    for name, v in (("D", D), ("delta_bias", delta_bias)):
        if v is not None and v.shape != (dim,):
            raise ValueError(f"selective_scan: {name} must be (dim={dim},), got {tuple(v.shape)}")
    if z is not None and z.shape != u.shape:
        raise ValueError(f"selective_scan: z {tuple(z.shape)} != u {tuple(u.shape)}")


def _compute_dtype(u: torch.Tensor) -> torch.dtype:
    return torch.float64 if u.dtype == torch.float64 else torch.float32


def _grouped_time_first(m: torch.Tensor, cd: torch.dtype) -> torch.Tensor:
    """B or C as the core wants it: (dim, N) as is, (batch, [G,] N, L) -> (L, batch, G, N)."""
    if m.dim() == 2:
        return m.to(cd)
    if m.dim() == 3:
        m = m.unsqueeze(1)
    return m.to(cd).permute(3, 0, 1, 2).contiguous()  # (L, batch, G, N)


def _outer(v: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """(L, batch, dim) x B-or-C -> (L, batch, dim, N): v_d * m_n (per group for grouped m)."""
    if m.dim() == 2:
        return v.unsqueeze(-1) * m
    length, batch, groups, n = m.shape
    dim = v.shape[-1]
    return (v.view(length, batch, groups, dim // groups, 1) * m.unsqueeze(3)).view(
        length, batch, dim, n
    )


def _contract(h: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """(L, batch, dim, N) . B-or-C -> (L, batch, dim): sum_n h_dn m_n, a batched mat-vec."""
    length, batch, dim, n = h.shape
    if m.dim() == 2:
        return torch.einsum("lbdn,dn->lbd", h, m)
    groups = m.shape[2]
    k = length * batch * groups
    return torch.bmm(h.view(k, dim // groups, n), m.view(k, n, 1)).view(length, batch, dim)


def _reduce(v: torch.Tensor, h: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """Gradient of B-or-C ``m`` in sum_dn v_d h_dn m_n: sum_d v_d h_dn, shaped like ``m``."""
    if m.dim() == 2:
        return torch.einsum("lbd,lbdn->dn", v, h)
    length, batch, groups, n = m.shape
    dim = v.shape[-1]
    k = length * batch * groups
    return torch.bmm(v.view(k, 1, dim // groups), h.view(k, dim // groups, n)).view(m.shape)


class _SelectiveCore(torch.autograd.Function):
    """The (L, batch, dim, N) part of the selective scan, fused by hand.

    Inputs are small and time-first: dt = delta after bias/softplus and du = dt * u, both
    (L, batch, dim); A (dim, N); B, C either (dim, N) or (L, batch, G, N). Output
    y_t = sum_n h_t C_t and the last state. Autograd through the plain expressions would
    allocate about ten (L, batch, dim, N) temporaries in backward, and fresh pages of that
    size are what dominates time at large sizes on a CPU. Here forward allocates two (the
    decays; the inputs, overwritten by the states), backward one (the state gradients,
    turned in place into the gradients of dt * A) plus what einsum needs; contractions with
    B and C are batched matrix products rather than multiply-and-sum.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx,
        dt: torch.Tensor,
        A: torch.Tensor,
        du: torch.Tensor,
        B: torch.Tensor,
        C: torch.Tensor,
        chunk: int,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        dt, du = dt.contiguous(), du.contiguous()
        decay = (dt.unsqueeze(-1) * A).exp_()
        x = _outer(du, B)
        h = _scan(decay, x, False, chunk, out=x)  # the states overwrite the inputs
        y = _contract(h, C)
        ctx.save_for_backward(dt, A, du, B, C, decay, h)
        ctx.chunk = chunk  # type: ignore[attr-defined]
        return y, h[-1].clone()

    @staticmethod
    @once_differentiable
    def backward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, grad_y: torch.Tensor, grad_last: torch.Tensor
    ) -> tuple[torch.Tensor, ...]:
        dt, A, du, B, C, decay, h = ctx.saved_tensors  # type: ignore[attr-defined]
        need = ctx.needs_input_grad  # type: ignore[attr-defined]
        grad_y = grad_y.contiguous()
        grad_C = _reduce(grad_y, h, C) if need[4] else None
        g = _outer(grad_y, C)  # direct gradient of every state
        g[-1] += grad_last
        _adjoint(decay, g, False, ctx.chunk, out=g)  # type: ignore[attr-defined]
        grad_du = _contract(g, B)  # g is also the gradient of dt * B * u
        grad_B = _reduce(du, g, B) if need[3] else None
        g_log = _times_previous_state(g, h, False).mul_(decay)  # gradient of dt * A
        length, batch, dim, n = g_log.shape
        # sum_n g_log * A: a mat-vec per channel over a strided view, no temporary
        grad_dt = torch.bmm(g_log.view(-1, dim, n).transpose(0, 1), A.unsqueeze(-1))
        grad_dt = grad_dt.view(dim, length, batch).permute(1, 2, 0)
        grad_A = g_log.mul_(dt.unsqueeze(-1)).sum((0, 1)) if need[1] else None
        return grad_dt, grad_A, grad_du, grad_B, grad_C, None


def selective_scan_chunked(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    z: torch.Tensor | None = None,
    delta_bias: torch.Tensor | None = None,
    delta_softplus: bool = False,
    return_last_state: bool = False,
    *,
    chunk_size: int = DEFAULT_CHUNK,
) -> ScanResult:
    """The pure-PyTorch selective scan (any device), same contract as ``selective_scan``.

    Internally time-first: the (L, batch, dim, N) decays and inputs are built from
    time-first copies of the small (.., L) tensors, so each scan step reads contiguous memory.
    """
    _check(u, delta, A, B, C, D, z, delta_bias)
    if chunk_size < 2:
        raise ValueError(f"selective_scan: chunk_size must be >= 2, got {chunk_size}")
    dtype_in = u.dtype
    cd = _compute_dtype(u)
    delta = delta.to(cd)
    if delta_bias is not None:
        delta = delta + delta_bias.to(cd)[:, None]
    if delta_softplus:
        delta = F.softplus(delta)  # threshold 20, as the kernel
    u_c = u.to(cd)
    dt = delta.permute(2, 0, 1).contiguous()  # (L, batch, dim)
    du = dt * u_c.permute(2, 0, 1)
    y, last = _SelectiveCore.apply(
        dt, A.to(cd), du, _grouped_time_first(B, cd), _grouped_time_first(C, cd), chunk_size
    )
    out = y.permute(1, 2, 0)
    if D is not None:
        out = out + u_c * D.to(cd)[:, None]
    if z is not None:
        out = out * F.silu(z.to(cd))
    out = out.to(dtype_in).contiguous()
    return (out, last) if return_last_state else out


def selective_scan(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    z: torch.Tensor | None = None,
    delta_bias: torch.Tensor | None = None,
    delta_softplus: bool = False,
    return_last_state: bool = False,
) -> ScanResult:
    """mamba_ssm's ``selective_scan_fn``: fused kernel on CUDA if installed, else the blocked scan.

    Returns ``out`` (batch, dim, L) in ``u``'s dtype, or ``(out, last_state)`` with
    ``last_state`` (batch, dim, N) in the compute dtype (float32, or float64 for float64
    input) when ``return_last_state``. Unlike the kernel, the PyTorch path also
    back-propagates through ``last_state``.
    """
    if _cuda_scan_fn is not None and u.is_cuda and u.dtype in _CUDA_DTYPES:
        return _cuda_scan_fn(
            u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state
        )  # pragma: no cover - needs a GPU
    return selective_scan_chunked(
        u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state
    )


def selective_scan_ref(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    z: torch.Tensor | None = None,
    delta_bias: torch.Tensor | None = None,
    delta_softplus: bool = False,
    return_last_state: bool = False,
) -> ScanResult:
    """The plain sequential loop over time, one step per position: the ground truth for tests.

    Follows mamba_ssm's ``selective_scan_ref`` step for step, except that float64 input
    is computed in float64.
    """
    _check(u, delta, A, B, C, D, z, delta_bias)
    dtype_in = u.dtype
    cd = _compute_dtype(u)
    batch, dim, length = u.shape
    u_c, delta = u.to(cd), delta.to(cd)
    if delta_bias is not None:
        delta = delta + delta_bias.to(cd)[:, None]
    if delta_softplus:
        delta = F.softplus(delta)
    A, B, C = A.to(cd), B.to(cd), C.to(cd)

    def per_channel(m: torch.Tensor) -> Callable[[int], torch.Tensor]:
        """Coefficient of every (batch, dim, N) at step t, whatever the layout of B or C."""
        if m.dim() == 2:
            return lambda t: m.expand(batch, dim, -1)
        if m.dim() == 3:
            return lambda t: m[:, None, :, t].expand(batch, dim, -1)
        full = m.repeat_interleave(dim // m.shape[1], dim=1)  # (batch, dim, N, L)
        return lambda t: full[..., t]

    b_at, c_at = per_channel(B), per_channel(C)
    h = u_c.new_zeros(batch, dim, A.shape[1])
    ys = []
    for t in range(length):
        d_t = delta[:, :, t, None]
        h = torch.exp(d_t * A) * h + d_t * b_at(t) * u_c[:, :, t, None]
        ys.append((h * c_at(t)).sum(-1))
    y = torch.stack(ys, dim=-1)
    out = y if D is None else y + u_c * D.to(cd)[:, None]
    if z is not None:
        out = out * F.silu(z.to(cd))
    out = out.to(dtype_in)
    return (out, h) if return_last_state else out
