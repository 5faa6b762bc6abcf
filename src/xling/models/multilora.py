"""Many LoRA adapters of one base model in one forward pass, grouped by adapter (segmented low-rank matmuls).

Scoring the base model and K adapters over the same items is K+1 passes of the base model's compute plus the
low-rank paths (about 2·r·(d_in + d_out) FLOPs per token per adapted layer, ~3% at r=8 and d=512). peft's
mixed-batch forward (``adapter_names=``) gathers each adapter's rows and scatters them back in every layer, which
cost ~60% of scoring time on CPU on a small model (profiled before this module existed). Here the batch is laid
out adapter-major — segment ``s`` holds the same N rows under adapter ``s`` (or the base) — so each adapter's rows
are one contiguous slice, and every adapted linear layer
computes ``base(x)`` once for the whole batch plus one batched matmul pair over the segments:

    out.view(S, N·T, d_out)[adapted] += bmm(bmm(x.view(S, N·T, d_in)[adapted], Aᵀ), Bᵀ) · scaling

No gather or scatter of the hidden state, no Python loop over adapters. Punica, S-LoRA and vLLM do the same with
CUDA kernels (SGMV/BGMV) that run on GPUs only; peft has no grouped path; so this is written in torch, which runs
it on CPU and GPU alike. Adapters are loaded by peft (its key mapping, configs and scaling), then each
``peft.tuners.lora.Linear`` is replaced by a ``GroupedLoRALinear`` holding the stacked weights of every adapter
(ranks padded with zeros, which add nothing). Non-linear LoRA layers and LoRA variants (DoRA, …) are not supported:
``group_adapters`` raises and the caller keeps peft's own forward.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import contextmanager
from typing import Any

from xling.errors import XlingError


class Layout:
    """Which adapter each equal-sized segment of the batch uses (``None``: the base model), shared by every layer."""

    def __init__(self) -> None:
        self.segments: tuple[int | None, ...] | None = None


def _grouped_linear_cls():
    import torch
    from torch import nn

    class GroupedLoRALinear(nn.Module):
        """A base linear layer plus the LoRA paths of several adapters, applied per batch segment."""

        def __init__(
            self, base: nn.Linear, A: torch.Tensor, B: torch.Tensor, scaling: torch.Tensor, layout: Layout
        ) -> None:
            super().__init__()
            self.base_layer = base
            self.register_buffer("A_t", A.transpose(1, 2).contiguous(), persistent=False)  # (K, d_in, r)
            self.register_buffer("B_t", B.transpose(1, 2).contiguous(), persistent=False)  # (K, r, d_out)
            self.register_buffer("scaling", scaling, persistent=False)  # (K,)
            self.layout = layout

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out = self.base_layer(x)
            segments = self.layout.segments
            if segments is None:
                return out
            n_seg = len(segments)
            adapted = [s for s, a in enumerate(segments) if a is not None]
            if not adapted:
                return out
            xs = x.reshape(n_seg, -1, x.shape[-1])
            ys = out.view(n_seg, -1, out.shape[-1])
            first = adapted[0]
            contiguous = adapted == list(range(first, first + len(adapted)))
            ids = [segments[s] for s in adapted]
            if ids == list(range(ids[0], ids[0] + len(ids))):  # a run of adapters: views, no copy
                A, B, scale = (t[ids[0] : ids[0] + len(ids)] for t in (self.A_t, self.B_t, self.scaling))
            else:
                A, B, scale = self.A_t[ids], self.B_t[ids], self.scaling[ids]
            x_in = xs[first : first + len(adapted)] if contiguous else xs[adapted]
            delta = torch.bmm(torch.bmm(x_in.to(A.dtype), A), B) * scale[:, None, None]
            if contiguous:
                ys[first : first + len(adapted)] += delta.to(out.dtype)
            else:
                ys[adapted] += delta.to(out.dtype)
            return out

    return GroupedLoRALinear


def group_adapters(peft_model: Any, names: Sequence[str]) -> tuple[Any, Layout]:
    """Replace every LoRA linear layer of ``peft_model`` (adapters ``names`` loaded by peft) by a grouped layer.

    Returns the underlying transformers model (no peft wrapper left: call it directly) and the ``Layout`` whose
    ``segments`` say, before each forward, which adapter index (into ``names``) or ``None`` each segment uses.
    """
    import torch
    from peft.tuners.lora import Linear as LoraLinear
    from peft.tuners.lora import LoraLayer

    grouped_cls = _grouped_linear_cls()
    model = peft_model.base_model.model
    layout = Layout()
    found = [
        (parent, child_name, child, f"{parent_name}.{child_name}".lstrip("."))
        for parent_name, parent in model.named_modules()
        for child_name, child in parent.named_children()
        if isinstance(child, LoraLayer)
    ]
    for _, _, child, where in found:  # check every layer before replacing any
        if not isinstance(child, LoraLinear) or child.lora_variant or child.fan_in_fan_out or child.merged:
            raise XlingError(f"LoRA layer {where}: only plain unmerged linear LoRA can be grouped")
    replaced = 0
    for parent, child_name, child, _ in found:
        base = child.get_base_layer()
        ranks = [child.lora_A[n].weight.shape[0] if n in child.lora_A else 0 for n in names]
        r = max(ranks)
        dtype = next((child.lora_A[n].weight.dtype for n in names if n in child.lora_A), base.weight.dtype)
        A = torch.zeros(len(names), r, base.in_features, dtype=dtype, device=base.weight.device)
        B = torch.zeros(len(names), base.out_features, r, dtype=dtype, device=base.weight.device)
        scaling = torch.zeros(len(names), dtype=dtype, device=base.weight.device)
        for i, n in enumerate(names):
            if n in child.lora_A:
                A[i, : ranks[i]] = child.lora_A[n].weight.detach()
                B[i, :, : ranks[i]] = child.lora_B[n].weight.detach()
                scaling[i] = float(child.scaling[n])
        setattr(parent, child_name, grouped_cls(base, A, B, scaling, layout))
        replaced += 1
    if not replaced:
        raise XlingError("no LoRA linear layers found to group")
    return model, layout


@contextmanager
def segments(layout: Layout, adapters: Sequence[int | None]):
    """Run forwards whose batch is ``len(adapters)`` equal segments, segment ``s`` under adapter ``adapters[s]``."""
    layout.segments = tuple(adapters)
    try:
        yield
    finally:
        layout.segments = None
