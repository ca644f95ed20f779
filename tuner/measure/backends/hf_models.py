"""Load tokenizers and models for the HF backend: GGUF (converted once, cached), local folder, hub id, tiny."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerFast

from tuner.measure import phases
from tuner.measure.backends.infeasible import Infeasible
from tuner.measure.backends.model_store import TINY_DEFAULTS, converted_gguf_folder

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def _byte_tokenizer() -> PreTrainedTokenizerFast:
    """A 256-byte BPE tokenizer with no merges, built in-process for the tiny random model."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {symbol: index for index, symbol in enumerate(sorted(alphabet))}
    for special in ("<pad>", "<s>", "</s>"):
        vocab[special] = len(vocab)
    core = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<pad>", bos_token="<s>", eos_token="</s>")


def _converted_gguf(gguf: Path) -> Path:
    """A float32 safetensors copy of a GGUF model, converted once (dequantizing takes ~20 s) and reused."""
    target = converted_gguf_folder(gguf)  # the worker gets INFERTUNE_MODELS_DIR from the evaluator
    if (target / "config.json").is_file():
        return target
    phases.enter(f"converting {gguf.name} to safetensors (once; cached under runs/models)")
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # The dequantized weights are plain float32: drop the GGUF marker so they save as a normal checkpoint.
    del model.config.quantization_config
    model.hf_quantizer = None
    save_folder(model, tokenizer, target)
    return target


def save_folder(model: Any, tokenizer: Any, target: Path) -> None:
    """Save weights and tokenizer into ``target`` atomically (staged, then renamed; another process may win)."""
    staging = target.with_name(f"{target.name}.tmp{os.getpid()}")
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    try:
        os.replace(staging, target)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)


def weights_location(model_spec: dict[str, Any]) -> str:
    """Folder or hub id ``from_pretrained`` reads (converting a GGUF file on first use)."""
    if "gguf" in model_spec:
        return str(_converted_gguf(Path(model_spec["gguf"])))
    return str(model_spec.get("path") or model_spec["hf_id"])


def load_tokenizer(model_spec: dict[str, Any]) -> Any:
    """The tokenizer, padding on the left (decoder-only generation)."""
    if "tiny" in model_spec:
        tokenizer = _byte_tokenizer()
    else:
        tokenizer = AutoTokenizer.from_pretrained(weights_location(model_spec),
                                                  trust_remote_code=bool(model_spec.get("trust_remote_code")))
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _tiny_config(spec: dict[str, Any], vocab_size: int) -> Any:
    from transformers import AutoConfig

    settings = {**TINY_DEFAULTS, **spec}
    architecture = settings.pop("architecture")
    # a vocabulary may be larger than the byte tokenizer's (a bigger embedding and LM head, as in real models);
    # the special tokens stay the tokenizer's
    model_vocab = max(int(settings.pop("vocab_size", vocab_size)), vocab_size)
    return AutoConfig.for_model(architecture, vocab_size=model_vocab, pad_token_id=vocab_size - 3,
                                bos_token_id=vocab_size - 2, eos_token_id=vocab_size - 1, **settings)


def model_config(model_spec: dict[str, Any], vocab_size: int) -> Any:
    """The model's architecture config (head counts, sizes) without loading its weights."""
    if "tiny" in model_spec:
        return _tiny_config(model_spec["tiny"], vocab_size)
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(weights_location(model_spec),
                                      trust_remote_code=bool(model_spec.get("trust_remote_code")))


def _tiny_model(spec: dict[str, Any], vocab_size: int, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)  # same seed, same random weights, whatever dtype comes next
    return AutoModelForCausalLM.from_config(_tiny_config(spec, vocab_size), dtype=torch.float32)


def quantize(model: torch.nn.Module, quantization: str) -> int:
    """Quantize in place; returns how many modules changed (the worker refused what cannot run here first)."""
    if quantization == "none":
        return 0
    if quantization == "int8-dynamic":
        from torch.ao.quantization import quantize_dynamic

        before = sum(isinstance(module, torch.nn.Linear) for module in model.modules())
        quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8, inplace=True)
        return before - sum(type(module) is torch.nn.Linear for module in model.modules())
    from torchao.quantization import Int4WeightOnlyConfig, Int8WeightOnlyConfig, quantize_

    config = Int8WeightOnlyConfig() if quantization == "int8-weight-only" else Int4WeightOnlyConfig(group_size=128)
    try:
        quantize_(model, config)
    except ImportError as error:  # on an H200, torchao 0.18's int4 layout asked for the mslk package
        raise Infeasible(f"{quantization}: torchao needs a package that is not installed ({error})") from None
    # torchao swaps the weights of Linear layers for quantized tensor subclasses
    return sum(isinstance(module, torch.nn.Linear) and type(module.weight) not in (torch.Tensor, torch.nn.Parameter)
               for module in model.modules())


def load_model(model_spec: dict[str, Any], dtype: str, quantization: str, device: str, seed: int,
               vocab_size: int) -> tuple[torch.nn.Module, int]:
    """Load weights in ``dtype``, quantize, move to ``device``; returns (model, quantized module count)."""
    phases.enter("loading the model", dtype=dtype, quantization=quantization)
    if "tiny" in model_spec:
        model = _tiny_model(model_spec["tiny"], vocab_size, seed).to(DTYPES[dtype])
    else:
        model = AutoModelForCausalLM.from_pretrained(weights_location(model_spec), dtype=DTYPES[dtype],
                                                     trust_remote_code=bool(model_spec.get("trust_remote_code")))
    model.to(device)
    model.eval()
    if quantization != "none":
        phases.enter("quantizing the weights", quantization=quantization)
    return model, quantize(model, quantization)


def float32_bytes(model_spec: dict[str, Any], vocab_size: int) -> int:
    """Bytes of the model's parameters in float32 (built on the meta device: no memory, no weights read).

    An upper bound of what loading takes in any dtype (the tiny model is built in float32, then cast).
    """
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(model_config(model_spec, vocab_size),
                                                 trust_remote_code=bool(model_spec.get("trust_remote_code")))
    return 4 * sum(parameter.numel() for parameter in model.parameters())
