"""The per-row LoRA used for serving: equal to PEFT's output, cheap to load, refusing what it
does not serve."""

from __future__ import annotations

import json
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

import pytest

from ragtune.errors import AdapterMismatchError
from ragtune.generate import load_base_model
from ragtune.generate.adapters import peft_quietly, read_adapter
from ragtune.generate.batching import BASE_ADAPTER
from ragtune.generate.lora import RowLora, lora_tensors
from ragtune.types import AdapterFolder
from tests.generate.conftest import MakeAdapter, make_generator

torch = pytest.importorskip("torch")


def peft_logits(base_dir: Path, folder: Path, ids: Any) -> Any:
    """Logits of PEFT's own model for the adapter in ``folder`` on a fresh full-precision base."""
    from peft import PeftModel

    base = load_base_model(base_dir, device="cpu", grounding="none", quantize="none")
    with peft_quietly():
        model = PeftModel.from_pretrained(base.model, str(folder)).eval()
    with torch.no_grad():
        return model(input_ids=ids).logits


def test_per_row_lora_equals_peft_for_rows_on_different_adapters_and_on_none(
    tiny_llama_dir: Path, make_adapter: MakeAdapter
) -> None:
    first = make_adapter("lora", seed=4)  # r 4 on q, v, down
    second = make_adapter("lora", seed=5, r=2)
    config = json.loads((second / "adapter_config.json").read_text())
    config["use_rslora"] = True  # scaling alpha / sqrt(r): read from the saved config
    (second / "adapter_config.json").write_text(json.dumps(config))
    base = load_base_model(tiny_llama_dir, device="cpu", grounding="none", quantize="none")
    lora = RowLora(base.model)
    for name, folder in (("first", first), ("second", second)):
        lora.add(name, lora_tensors(read_adapter(folder), dtype=torch.float32, device="cpu"))
    torch.manual_seed(0)
    ids = torch.randint(3, 300, (4, 11))
    want = {
        "first": peft_logits(tiny_llama_dir, first, ids),
        "second": peft_logits(tiny_llama_dir, second, ids),
        BASE_ADAPTER: base.model(input_ids=ids).logits.detach(),
    }
    assert (want["first"] - want[BASE_ADAPTER]).abs().max() > 1e-2  # the adapters do something
    assert (want["second"] - want["first"]).abs().max() > 1e-2
    for names in (
        ["first", BASE_ADAPTER, "second", "first"],  # mixed: one batched product per layer
        ["second"] * 4,  # one adapter for all rows: plain products
        [BASE_ADAPTER] * 4,  # no LoRA row: the hooks add nothing
    ):
        with torch.no_grad():
            got = lora.forward(names, input_ids=ids, logits_to_keep=0).logits
        for i, name in enumerate(names):
            assert torch.allclose(got[i], want[name][i], atol=1e-4, rtol=0), (names, i)


def test_adapter_load_does_not_grow_with_the_number_held(
    tiny_llama_dir: Path, tmp_path: Path, make_adapter: MakeAdapter
) -> None:
    """Loading reads, checks and copies tensors: no module-tree change, no new hook, and the
    time of a load with 20 adapters held is about that of the first loads."""
    made = make_adapter("lora", seed=1)
    folders = []
    for i in range(24):
        folders.append(tmp_path / f"copy{i}")
        shutil.copytree(made, folders[-1])
    generator, pool = make_generator(tiny_llama_dir, tmp_path / "r", quantize="int4")
    model = pool.base.model
    generator.load_adapter(AdapterFolder(folders[0]))
    modules = [name for name, _ in model.named_modules()]
    hooks = sum(len(m._forward_hooks) for m in model.modules())
    assert hooks == pool.lora.hooked_layers == 2 * 7  # every projection, once
    seconds = []
    for folder in folders[1:]:
        started = time.perf_counter()
        generator.load_adapter(AdapterFolder(folder))
        seconds.append(time.perf_counter() - started)
    assert [name for name, _ in model.named_modules()] == modules
    assert sum(len(m._forward_hooks) for m in model.modules()) == hooks
    assert len(pool.lora.names) == 24
    early, late = statistics.median(seconds[:5]), statistics.median(seconds[-5:])
    assert late < 3 * early + 0.005, (early, late)  # flat, with room for a busy machine


def test_lora_kinds_ragtune_does_not_serve_are_refused(
    tiny_llama_dir: Path, tmp_path: Path, make_adapter: MakeAdapter
) -> None:
    generator, pool = make_generator(tiny_llama_dir, tmp_path / "r")
    for field, value, message in (
        ("use_dora", True, "DoRA"),
        ("lora_bias", True, "LoRA biases"),
        ("modules_to_save", ["lm_head"], "modules_to_save"),
    ):
        folder = make_adapter("lora", seed=2)
        config = json.loads((folder / "adapter_config.json").read_text())
        config[field] = value
        (folder / "adapter_config.json").write_text(json.dumps(config))
        with pytest.raises(AdapterMismatchError, match=message):
            generator.load_adapter(AdapterFolder(folder))
    assert pool.loaded == () and not pool.lora.active  # nothing changed in memory
