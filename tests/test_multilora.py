"""Grouped multi-LoRA forward: every segment equals peft with that one adapter active (fp32, tiny Llama)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def tiny_and_adapters(tmp_path_factory, torch_one_thread):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from xling.models.tiny import build_tiny_llama

    root = tmp_path_factory.mktemp("mlora")
    model_dir = build_tiny_llama(root / "tiny")
    adapters = {}
    for name, r, targets, seed in (
        ("a", 4, ["q_proj", "v_proj"], 1),
        ("b", 8, "all-linear", 2),
        ("c", 2, ["o_proj", "down_proj"], 3),
    ):
        torch.manual_seed(seed)
        base = AutoModelForCausalLM.from_pretrained(model_dir)
        config = LoraConfig(r=r, lora_alpha=2 * r, target_modules=targets, init_lora_weights=False)
        get_peft_model(base, config).save_pretrained(root / name)
        adapters[name] = root / name
    return model_dir, adapters


def _peft_logits(model_dir, adapter, ids):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    model = base if adapter is None else PeftModel.from_pretrained(base, str(adapter)).eval()
    with torch.inference_mode():
        return model(input_ids=ids).logits


def test_each_segment_equals_its_single_adapter(tiny_and_adapters):
    from transformers import AutoModelForCausalLM

    from xling.models.adapters import attach_adapters
    from xling.models.multilora import group_adapters, segments

    model_dir, adapters = tiny_and_adapters
    ids = torch.randint(3, 300, (3, 11), generator=torch.Generator().manual_seed(0))
    names = list(adapters)
    model, layout = group_adapters(attach_adapters(AutoModelForCausalLM.from_pretrained(model_dir), adapters), names)
    order = [None, names.index("b"), names.index("a"), None, names.index("c")]  # any order, base twice
    with torch.inference_mode(), segments(layout, order):
        logits = model(input_ids=ids.repeat(len(order), 1)).logits.view(len(order), *ids.shape, -1)
    for s, index in enumerate(order):
        ref = _peft_logits(model_dir, None if index is None else adapters[names[index]], ids)
        assert (logits[s] - ref).abs().max().item() <= 1e-4
    with torch.inference_mode():  # without a layout the grouped model is the base model
        plain = model(input_ids=ids).logits
    assert (plain - _peft_logits(model_dir, None, ids)).abs().max().item() <= 1e-5
