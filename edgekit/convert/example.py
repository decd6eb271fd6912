"""Tiny Gemma-3-architecture example models, built here with no download.

`write_example_model(dir)` writes a Hugging Face checkpoint directory (config.json,
model.safetensors, tokenizer files, chat template) of a Gemma 3 text model with random
weights and a byte-level BPE tokenizer trained on a small built-in corpus. It is what
`edgekit example tiny-gemma3 DIR` and `edgekit demo` use, and what tests convert.

Needs the `convert` extra (torch, transformers, tokenizers).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from edgekit.errors import InputError

SPECIAL_TOKENS = ("<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>")

# Gemma-style turns. LiteRT-LM passes `content` as a list of {"type": "text"} parts,
# Hugging Face usually as a string: the template accepts both.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'assistant' -%}{%- set role = 'model' -%}"
    "{%- elif message['role'] == 'system' -%}{%- set role = 'user' -%}"
    "{%- else -%}{%- set role = message['role'] -%}{%- endif -%}"
    "{{ '<start_of_turn>' + role + '\n' }}"
    "{%- if message['content'] is string -%}{{ message['content'] | trim }}"
    "{%- else -%}{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'text' -%}{{ part['text'] }}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{{ '<end_of_turn>\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\n' }}{%- endif -%}"
)
CHAT_TEMPLATE_AS = "as LiteRT-LM applies to Gemma models"
"""Whose turn format CHAT_TEMPLATE is, as a note says it where another runtime is given the template."""

_CORPUS_WORDS = [
    "the",
    "a",
    "an",
    "of",
    "to",
    "in",
    "and",
    "is",
    "it",
    "that",
    "for",
    "on",
    "with",
    "as",
    "was",
    "at",
    "by",
    "from",
    "this",
    "be",
    "are",
    "or",
    "model",
    "phone",
    "battery",
    "token",
    "speed",
    "energy",
    "chat",
    "answer",
    "question",
    "city",
    "river",
    "name",
    "date",
    "time",
    "user",
    "write",
    "short",
    "list",
    "three",
    "five",
    "summary",
    "email",
    "meeting",
    "weather",
    "translate",
    "positive",
    "negative",
    "neutral",
    "route",
    "label",
    "extract",
    "rewrite",
    "poem",
    "story",
    "friendly",
    "formal",
    "please",
    "thanks",
    "hello",
    "world",
    "small",
    "fast",
    "local",
    "device",
    "android",
    "pixel",
    "gemma",
    "edge",
    "run",
    "convert",
    "deploy",
    "bench",
    "measure",
    "number",
    "value",
    "result",
    "test",
    "check",
    "true",
    "false",
    "yes",
    "no",
]


@dataclasses.dataclass(frozen=True, kw_only=True)
class ExampleSpec:
    """Shape of an example Gemma 3 model. Defaults give the tiny CI model."""

    vocab_size: int = 512
    hidden_size: int = 64
    intermediate_size: int = 128
    num_layers: int = 2
    num_heads: int = 2
    num_kv_heads: int = 1
    head_dim: int = 32
    sliding_window: int = 64
    sliding_window_pattern: int = 2
    max_position_embeddings: int = 2048
    init_std: float = 0.02
    seed: int = 0

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name == "init_std":
                if not value > 0:
                    raise InputError(f"example model: init_std must be positive, got {value!r}")
            elif field.name != "seed" and (not isinstance(value, int) or value <= 0):
                raise InputError(f"example model: {field.name} must be a positive integer, got {value!r}")
        if self.vocab_size < len(SPECIAL_TOKENS) + 256:
            raise InputError(
                f"example model: vocab_size must be at least {len(SPECIAL_TOKENS) + 256} "
                f"(256 byte tokens + specials), got {self.vocab_size}"
            )
        if self.num_heads % self.num_kv_heads:
            raise InputError(
                f"example model: num_heads ({self.num_heads}) must be a multiple of num_kv_heads ({self.num_kv_heads})"
            )


TINY = ExampleSpec()

# The published Gemma 3 270M shape (random weights): benchmarks only, never CI.
GEMMA3_270M = ExampleSpec(
    vocab_size=262_144,
    hidden_size=640,
    intermediate_size=2048,
    num_layers=18,
    num_heads=4,
    num_kv_heads=1,
    head_dim=256,
    sliding_window=512,
    sliding_window_pattern=6,
    max_position_embeddings=32_768,
)

# The top-1 agreement floor to convert these models with. Random weights give nearly
# flat logits, so INT4 reorders about half of them (measured: 40-50% agreement), while a
# corrupted weight tensor drops agreement to 0-10%. Trained models keep the recipe's floor.
RANDOM_WEIGHTS_MIN_AGREEMENT = 0.25

EXAMPLES: dict[str, ExampleSpec] = {"tiny-gemma3": TINY, "gemma3-270m-shape": GEMMA3_270M}


def _corpus(seed: int, lines: int = 400) -> list[str]:
    import random

    rng = random.Random(seed)
    return [" ".join(rng.choice(_CORPUS_WORDS) for _ in range(rng.randint(4, 14))) for _ in range(lines)]


def build_tokenizer(vocab_size: int, seed: int = 0) -> Any:
    """Train a byte-level BPE tokenizer on the built-in corpus; returns a `PreTrainedTokenizerFast`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    # A large vocabulary (the 270M shape) cannot be reached from a small corpus: the
    # trainer stops early and the model's embedding table stays at `vocab_size` rows.
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(seed), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<bos>",
        eos_token="<eos>",
        pad_token="<pad>",
        unk_token="<unk>",
        additional_special_tokens=["<start_of_turn>", "<end_of_turn>"],
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def build_model(spec: ExampleSpec, tokenizer: Any) -> Any:
    """A `Gemma3ForCausalLM` with random weights shaped by `spec`, in eval mode."""
    import torch
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    layer_types = [
        "full_attention" if (i + 1) % spec.sliding_window_pattern == 0 else "sliding_attention"
        for i in range(spec.num_layers)
    ]
    config = Gemma3TextConfig(
        vocab_size=spec.vocab_size,
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_layers,
        num_attention_heads=spec.num_heads,
        num_key_value_heads=spec.num_kv_heads,
        head_dim=spec.head_dim,
        query_pre_attn_scalar=spec.head_dim,
        sliding_window=spec.sliding_window,
        layer_types=layer_types,
        max_position_embeddings=spec.max_position_embeddings,
        rope_parameters={
            "full_attention": {"rope_type": "default", "rope_theta": 1_000_000.0},
            "sliding_attention": {"rope_type": "default", "rope_theta": 10_000.0},
        },
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=[tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<end_of_turn>")],
        bos_token_id=tokenizer.bos_token_id,
        tie_word_embeddings=True,
        initializer_range=spec.init_std,
    )
    torch.manual_seed(spec.seed)
    model = Gemma3ForCausalLM(config)
    with torch.no_grad():
        emb = model.get_input_embeddings().weight
        # HF init zeroes the padding row; with tied embeddings that row is also an output
        # row, and block-wise INT4 turns an all-zero block into a 0.0 scale that XNNPACK
        # rejects at run time. A trained model never has it; give it random values too.
        emb[config.pad_token_id].normal_(0.0, config.initializer_range)
    model.generation_config.eos_token_id = config.eos_token_id
    model.generation_config.do_sample = False
    return model.eval()


def write_example_model(directory: Path, spec: ExampleSpec = TINY) -> Path:
    """Write a Gemma 3 checkpoint directory (random weights) to `directory`; returns it."""
    directory = Path(directory)
    if directory.exists() and any(directory.iterdir()):
        raise InputError(f"{directory} is not empty: choose a new folder for the example model")
    tokenizer = build_tokenizer(spec.vocab_size, spec.seed)
    model = build_model(spec, tokenizer)
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    (directory / "edgekit-example.json").write_text(
        json.dumps({"example": "gemma3", "random_weights": True, **dataclasses.asdict(spec)}, indent=2) + "\n"
    )
    return directory
