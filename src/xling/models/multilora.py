"""Many LoRA adapters of one base model in one forward pass, grouped by adapter (segmented low-rank matmuls).

Scoring the base model and K adapters over the same items is K+1 passes of the base model's compute plus the
low-rank paths (about 2·r·(d_in + d_out) FLOPs per token per adapted layer, ~3% at r=8 and d=512). peft's
mixed-batch forward (``adapter_names=``) gathers each adapter's rows and scatters them back in every layer. Here the
batch is laid out adapter-major — segment ``s`` holds the same N rows under adapter ``s`` (or the base) — so each
adapter's rows are one contiguous slice, and every adapted linear layer runs the base matmul once for the whole
batch plus one segmented low-rank matmul pair for all adapters (the SGMV idea of Punica and S-LoRA, in torch ops):

    xa = bmm(x.view(S, N·T, d_in)[adapted], A)     # the "shrink": one batched matmul for every adapter
    out.view(S, N·T, d_out)[adapted] = bmm(xa, B·s)  # the "expand" (scaling s folded into B); base segments: 0
    out.addmm_(x, Wᵀ)                                 # the base matmul accumulates onto the deltas

Three passes over activations per layer beyond the base matmul (read x; write the deltas, which the base matmul
reads back), no gather or scatter of the hidden state, no Python loop over adapters, no host synchronisation and no
shape that depends on data: which segments use which adapters is decided once per batch (``segments``), as two
slices when the adapted segments and their adapters are runs (what the scorer produces), else as device index
tensors. The stacked weights are kept
in the base layer's dtype (bf16 on a GPU): the matmuls accumulate in float32 and the base matmul adds its product to
the small deltas before rounding, so each output is rounded once, as in the base model (adding a rounded delta to a
rounded base output would round it twice). Adapters are loaded by peft (its key mapping, configs and scaling),
then each ``peft.tuners.lora.Linear`` is replaced by a ``GroupedLoRALinear`` holding the stacked weights of every
adapter (ranks padded with zeros, which add nothing). Non-linear LoRA layers and LoRA variants (DoRA, …) are not
supported: ``group_adapters`` raises and the caller keeps peft's own forward.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from xling.errors import XlingError


@dataclass(frozen=True)
class Plan:
    """How one batch's ``n_seg`` equal segments map to adapters: ``run`` = (first segment, first adapter, count)
    when both are runs (views, no copy), else ``seg_idx``/``ad_idx`` device index tensors (adapted segment →
    adapter slot)."""

    n_seg: int
    run: tuple[int, int, int] | None = None
    seg_idx: Any = None
    ad_idx: Any = None


class Layout:
    """The current batch's ``Plan`` (``None``: every segment is the base model), shared by every grouped layer."""

    def __init__(self, device: Any = None) -> None:
        self.device = device
        self.plan: Plan | None = None


def make_plan(adapters: Sequence[int | None], device: Any) -> Plan | None:
    """The ``Plan`` of segments whose adapter slots are ``adapters`` (``None``: the base model)."""
    adapted = [s for s, a in enumerate(adapters) if a is not None]
    if not adapted:
        return None
    slots = [adapters[s] for s in adapted]
    n = len(adapted)
    if adapted == list(range(adapted[0], adapted[0] + n)) and slots == list(range(slots[0], slots[0] + n)):
        return Plan(len(adapters), run=(adapted[0], slots[0], n))
    import torch

    from xling.models.base import to_device

    def index(values: list[int]):
        return to_device(torch.tensor(values, dtype=torch.long), device or "cpu")

    return Plan(len(adapters), seg_idx=index(adapted), ad_idx=index(slots))


def _grouped_linear_cls():
    import torch
    from torch import nn

    class GroupedLoRALinear(nn.Module):
        """A base linear layer plus the LoRA paths of several adapters, applied per batch segment."""

        def __init__(self, base: nn.Linear, A: torch.Tensor, B: torch.Tensor, layout: Layout) -> None:
            super().__init__()
            self.base_layer = base
            self.register_buffer("A_t", A.transpose(1, 2).contiguous(), persistent=False)  # (K, d_in, r)
            self.register_buffer("B_t", B.transpose(1, 2).contiguous(), persistent=False)  # (K, r, d_out), scaled
            self.layout = layout

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            plan = self.layout.plan
            if plan is None:
                return self.base_layer(x)
            weight, bias = self.base_layer.weight, self.base_layer.bias
            d_in, d_out = weight.shape[1], weight.shape[0]
            xs = x.reshape(plan.n_seg, -1, d_in)
            A, B = self.A_t, self.B_t
            # every segment's low-rank delta (plus the bias), then the base matmul accumulates x·Wᵀ onto it
            out = torch.empty(xs.shape[0], xs.shape[1], d_out, dtype=x.dtype, device=x.device)
            if plan.run is not None:
                s0, a0, n = plan.run
                for part in (out[:s0], out[s0 + n :]):  # base segments: the bias alone
                    _fill(part, bias)
                xa = torch.bmm(xs[s0 : s0 + n], A[a0 : a0 + n])
                if bias is None:
                    torch.bmm(xa, B[a0 : a0 + n], out=out[s0 : s0 + n])
                else:
                    torch.baddbmm(bias.expand(n, xs.shape[1], d_out), xa, B[a0 : a0 + n], out=out[s0 : s0 + n])
            else:
                _fill(out, bias)
                xa = torch.bmm(xs.index_select(0, plan.seg_idx), A.index_select(0, plan.ad_idx))
                out.index_add_(0, plan.seg_idx, torch.bmm(xa, B.index_select(0, plan.ad_idx)))
            out.view(-1, d_out).addmm_(x.reshape(-1, d_in), weight.t())
            return out.view(*x.shape[:-1], d_out)

    def _fill(part: torch.Tensor, bias: torch.Tensor | None) -> None:
        """The base model's share of a segment before its matmul: the bias, or zero."""
        if bias is None:
            part.zero_()
        else:
            part.copy_(bias)

    return GroupedLoRALinear


def group_adapters(peft_model: Any, names: Sequence[str]) -> tuple[Any, Layout]:
    """Replace every LoRA linear layer of ``peft_model`` (adapters ``names`` loaded by peft) by a grouped layer.

    Returns the underlying transformers model (no peft wrapper left: call it directly) and the ``Layout`` whose
    ``plan`` says, during each forward inside ``segments``, which adapter index (into ``names``) each segment uses.
    The stacked weights take the base layer's dtype (peft keeps adapters of a bf16 model in float32); the scaling
    is folded into B in float32 first.
    """
    import torch
    from peft.tuners.lora import Linear as LoraLinear
    from peft.tuners.lora import LoraLayer

    grouped_cls = _grouped_linear_cls()
    model = peft_model.base_model.model
    found = [
        (parent, child_name, child, f"{parent_name}.{child_name}".lstrip("."))
        for parent_name, parent in model.named_modules()
        for child_name, child in parent.named_children()
        if isinstance(child, LoraLayer)
    ]
    for _, _, child, where in found:  # check every layer before replacing any
        plain = isinstance(child, LoraLinear) and isinstance(child.get_base_layer(), torch.nn.Linear)
        if not plain or child.lora_variant or child.fan_in_fan_out or child.merged:
            raise XlingError(f"LoRA layer {where}: only plain unmerged linear LoRA can be grouped")
    if not found:
        raise XlingError("no LoRA linear layers found to group")
    layout = Layout(found[0][2].get_base_layer().weight.device)
    for parent, child_name, child, _ in found:
        base = child.get_base_layer()
        ranks = [child.lora_A[n].weight.shape[0] if n in child.lora_A else 0 for n in names]
        r, device = max(ranks), base.weight.device
        A = torch.zeros(len(names), r, base.in_features, dtype=torch.float32, device=device)
        B = torch.zeros(len(names), base.out_features, r, dtype=torch.float32, device=device)
        for i, n in enumerate(names):
            if n in child.lora_A:
                A[i, : ranks[i]] = child.lora_A[n].weight.detach()
                B[i, :, : ranks[i]] = child.lora_B[n].weight.detach() * float(child.scaling[n])
        dtype = base.weight.dtype
        setattr(parent, child_name, grouped_cls(base, A.to(dtype), B.to(dtype), layout))
    return model, layout


@contextmanager
def segments(layout: Layout, adapters: Sequence[int | None]):
    """Run forwards whose batch is ``len(adapters)`` equal segments, segment ``s`` under adapter ``adapters[s]``."""
    layout.plan = make_plan(adapters, layout.device)
    try:
        yield
    finally:
        layout.plan = None
