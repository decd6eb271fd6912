"""Gemma 3's tied embedding/output table as two tensors, so each half gets its own precision.

The table (262,144 x 640 in Gemma 3 270M) is read twice per token: by the embedding
lookup and by the output projection that scores every vocabulary entry. It is most of
the model's bytes, and its 4-bit error is most of INT4's quality loss, nearly all of it
on the output side (docs/benchmarks.md). As one tensor it can only have one precision.

Here the table is stored as two tensors: `low_ids`, the rows of the `rows` ids the model
itself uses most (token_order), and `high_ids`, the rest; `position[id]` says where each
id's row is. Both halves stay tied: the lookup reads whichever half holds the id, and
the output projection is the two halves' projections concatenated, then put back in id
order by a row lookup. The graph differs from the original by those lookups, a select
and a concatenation; the numbers do not (the split model equals the original bit for bit
in PyTorch: tests/test_quant_recipes.py).

How it reaches litert-torch: a split checkpoint (the table stored as the two halves)
and a Gemma3ForCausalLM subclass that litert-torch instantiates through export_hf's
`auto_model_override`, which names a class that `load_model` reads from the
`transformers` module (litert_torch/generative/export_hf/core/export_lib.py, 0.10).
Quantization rules then address each half by its module name (SCOPE_LOW_IDS,
SCOPE_HIGH_IDS), which litert-torch writes into every op's tensor names.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from edgekit.artifact import TableSplitRecord
from edgekit.convert.vocab import by_use, kept_ids, piece_script, vocab_sha256

MODEL_CLASS = "EdgekitGemma3SplitTable"
"""The class name export_hf's `auto_model_override` is given."""
CONFIG_KEY = "edgekit_table_split_rows"
"""config.json key of a split checkpoint: how many ids the first half holds."""
SCOPE_LOW_IDS = "low_ids"
SCOPE_HIGH_IDS = "high_ids"
TABLE = "model.embed_tokens.weight"


@dataclasses.dataclass(frozen=True, kw_only=True)
class TableShape:
    """The three config.json fields that decide whether and where a model's table splits."""

    model_type: str | None
    vocab_size: int | None
    tie_word_embeddings: bool = True
    """Hugging Face's default when config.json leaves it out."""

    @classmethod
    def read(cls, model_dir: Path) -> TableShape:
        """The table's shape as checkpoint folder `model_dir`'s config.json gives it (a missing or odd field: None)."""
        config = json.loads((model_dir / "config.json").read_text())
        model_type = config.get("model_type")
        vocab = config.get("vocab_size")
        return cls(
            model_type=model_type if isinstance(model_type, str) else None,
            vocab_size=vocab if isinstance(vocab, int) else None,
            tie_word_embeddings=bool(config.get("tie_word_embeddings", True)),
        )


def split_rows(shape: TableShape, *, original_vocab_size: int | None = None, text_ids: int | None = None) -> int | None:
    """Ids in the first (8-bit) half when the model can be split (a tied Gemma 3 table), else None.

    Half the vocabulary, rounded down to a multiple of 32. For a vocabulary trimmed by
    `--vocab-from` (`original_vocab_size`: the untrimmed vocabulary's size), the ids its texts
    use (`text_ids`, ranked first by token_order) and 32 more, at most three quarters of it
    and as many as the untrimmed default gives 8 bits: the ids an app uses were in the
    default's 8-bit half (half of a trimmed table at 4 bits cost a German app's held-out
    manuals 0.005 bits per byte on nearly the same tokens), and the pieces vocab.fill_order
    adds are rare; at 4 bits they keep Gemma 3 270M's default trim under 150 MB
    (docs/benchmarks.md). Without `text_ids` (a folder trimmed before they were recorded),
    three quarters.
    """
    vocab = shape.vocab_size
    if shape.model_type != "gemma3_text" or not shape.tie_word_embeddings:
        return None
    if vocab is None or vocab < 64:
        return None
    if original_vocab_size is None:
        return (vocab // 2) // 32 * 32
    rows = min((original_vocab_size // 2) // 32 * 32, (vocab * 3 // 4) // 32 * 32)
    if text_ids is not None:
        rows = min(rows, (text_ids + 63) // 32 * 32)
    return rows


class _SplitEmbedding(nn.Module):  # type: ignore[misc]
    """Gemma3TextScaledWordEmbedding over two tables.

    `position[id]` is the id's row in the two tables stacked: positions below `rows` are
    in the first (the 8-bit half), the rest in the second.
    """

    def __init__(self, vocab_size: int, hidden_size: int, rows: int, embed_scale: float) -> None:
        super().__init__()
        self.rows = rows
        self.embed_scale = float(embed_scale)
        self.position = nn.Buffer(torch.arange(vocab_size, dtype=torch.int32))
        setattr(self, SCOPE_LOW_IDS, nn.Embedding(rows, hidden_size))
        setattr(self, SCOPE_HIGH_IDS, nn.Embedding(vocab_size - rows, hidden_size))

    def halves(self) -> tuple[nn.Embedding, nn.Embedding]:
        low: nn.Embedding = getattr(self, SCOPE_LOW_IDS)
        high: nn.Embedding = getattr(self, SCOPE_HIGH_IDS)
        return low, high

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        low, high = self.halves()
        pos = self.position[ids]
        in_low = (pos < self.rows).unsqueeze(-1)
        a = low(torch.clamp(pos, max=self.rows - 1))
        b = high(torch.clamp(pos - self.rows, min=0))
        # Gemma3TextScaledWordEmbedding multiplies by sqrt(hidden_size) (transformers 5.x).
        return torch.where(in_low, a, b) * self.embed_scale


class _HalfProjection(nn.Module):  # type: ignore[misc]
    """Scores of one half's ids: hidden states x that half of the (tied) table."""

    def __init__(self, table: nn.Embedding) -> None:
        super().__init__()
        object.__setattr__(self, "_table", table)  # tied, not owned: no second parameter name

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        table: nn.Embedding = self.__dict__["_table"]
        return F.linear(hidden, table.weight)


class _SplitHead(nn.Module):  # type: ignore[misc]
    """The output projection of a split table: both halves' scores, concatenated in id order."""

    def __init__(self, embedding: _SplitEmbedding) -> None:
        super().__init__()
        low, high = embedding.halves()
        object.__setattr__(self, "_embedding", embedding)  # its `position` buffer, not a second copy
        setattr(self, SCOPE_LOW_IDS, _HalfProjection(low))
        setattr(self, SCOPE_HIGH_IDS, _HalfProjection(high))

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        stacked = torch.cat([getattr(self, SCOPE_LOW_IDS)(hidden), getattr(self, SCOPE_HIGH_IDS)(hidden)], dim=-1)
        embedding: _SplitEmbedding = self.__dict__["_embedding"]
        # Back to id order: a row lookup of the scores by `position`. (index_select lowers
        # with a bounds mask the size of the vocabulary, which litert-torch 0.10 writes as
        # an empty constant on a 262k vocabulary: "Tensor … is invalidly specified".)
        vocab = stacked.shape[-1]
        rows = F.embedding(embedding.position, stacked.reshape(-1, vocab).transpose(0, 1))
        return rows.transpose(0, 1).reshape(stacked.shape)


def _model_class() -> type:
    from transformers import Gemma3ForCausalLM

    class EdgekitGemma3SplitTable(Gemma3ForCausalLM):  # type: ignore[misc]
        """Gemma3ForCausalLM whose tied table is `_SplitEmbedding` + `_SplitHead`."""

        _tied_weights_keys: ClassVar[dict[str, str]] = {}  # the head owns no weight of its own

        def __init__(self, config: Any) -> None:
            super().__init__(config)
            scale = float(self.model.embed_tokens.scalar_embed_scale)
            rows = int(getattr(config, CONFIG_KEY))
            self.model.embed_tokens = _SplitEmbedding(config.vocab_size, config.hidden_size, rows, scale)
            self.lm_head = _SplitHead(self.model.embed_tokens)
            self.post_init()

        def get_output_embeddings(self) -> None:
            return None

        def tie_weights(self, *args: Any, **kwargs: Any) -> None:
            return None

    EdgekitGemma3SplitTable.__name__ = MODEL_CLASS
    return EdgekitGemma3SplitTable


def register() -> str:
    """Make the split model class known to litert-torch's loader; returns its name for `auto_model_override`."""
    from litert_torch.generative.export_hf.core import export_lib

    # load_model reads `transformers.__dict__[auto_model_override]` from the module object
    # it imported (transformers' lazy module can be replaced in sys.modules), so set it there.
    if MODEL_CLASS not in vars(export_lib.transformers):
        setattr(export_lib.transformers, MODEL_CLASS, _model_class())
    return MODEL_CLASS


def write_checkpoint(source: Path, dest: Path, rows: int, order: torch.Tensor | None = None) -> Path:
    """Copy checkpoint folder `source` into `dest` with its table stored as the two halves.

    `order`: every token id once, the ids of the 8-bit half first (default: id order).
    Everything but the weights and config.json is copied as is; config.json gains
    CONFIG_KEY and drops the tie (the split head ties by construction).
    """
    from safetensors import safe_open
    from safetensors.torch import save_file

    dest.mkdir(parents=True, exist_ok=True)
    for path in sorted(source.iterdir()):
        skip = path.suffix == ".safetensors" or path.name in ("config.json", "model.safetensors.index.json")
        if path.is_file() and not skip:
            shutil.copy2(path, dest / path.name)
    config = json.loads((source / "config.json").read_text())
    config[CONFIG_KEY] = rows
    config["tie_word_embeddings"] = False
    (dest / "config.json").write_text(json.dumps(config, indent=2))
    tensors: dict[str, torch.Tensor] = {}
    for path in sorted(source.glob("*.safetensors")):
        with safe_open(str(path), framework="pt") as f:
            for name in f.keys():  # noqa: SIM118 (safe_open has no __iter__)
                if name != "lm_head.weight":
                    tensors[name] = f.get_tensor(name)
    table = tensors.pop(TABLE)
    vocab = table.shape[0]
    order = torch.arange(vocab) if order is None else order.to(torch.int64)
    if sorted(order.tolist()) != list(range(vocab)):
        raise ValueError(f"order must hold every id below {vocab} once")
    position = torch.empty(vocab, dtype=torch.int32)
    position[order] = torch.arange(vocab, dtype=torch.int32)
    stacked = table[order]
    tensors["model.embed_tokens.position"] = position
    tensors[f"model.embed_tokens.{SCOPE_LOW_IDS}.weight"] = stacked[:rows].contiguous()
    tensors[f"model.embed_tokens.{SCOPE_HIGH_IDS}.weight"] = stacked[rows:].contiguous()
    save_file(tensors, str(dest / "model.safetensors"), metadata={"format": "pt"})
    return dest


SCRIPTS = 16
"""Writing systems the model is asked to write in: the most common among the vocabulary's words."""
SAMPLED_TOKENS = 96
SAMPLING_SEED = 0


def script_seeds(pieces: list[str | None], *, scripts: int = SCRIPTS) -> list[int]:
    """One frequent token per writing system, for the `scripts` systems with the most pieces in the vocabulary.

    Every piece with a letter counts for its writing system (`piece_script`), word starts or
    not: Chinese and Japanese are written without spaces, so their pieces seldom start a
    word (counting only word starts of 3+ letters left Chinese out of the 16). A system's
    seed is its lowest id (ids of a SentencePiece vocabulary fall with frequency) among
    word starts ("\u2581" + 2+ letters); in a system whose pieces seldom start a word
    (under a tenth: no spaces between words), or without such a piece, among pieces of
    2+ letters; else among all its pieces.
    """
    count: dict[str, int] = {}
    word_starts: dict[str, int] = {}
    first_word: dict[str, int] = {}
    first: dict[str, int] = {}
    first_any: dict[str, int] = {}
    for i, piece in enumerate(pieces):
        if not isinstance(piece, str):
            continue
        script = piece_script(piece)
        if script is None:
            continue
        count[script] = count.get(script, 0) + 1
        first_any.setdefault(script, i)
        if len(piece.lstrip("\u2581")) >= 2:
            first.setdefault(script, i)
            if piece.startswith("\u2581"):
                first_word.setdefault(script, i)
        if piece.startswith("\u2581"):
            word_starts[script] = word_starts.get(script, 0) + 1
    ranked = sorted(count, key=lambda k: (-count[k], k))[:scripts]

    def seed(k: str) -> int:
        if k in first_word and word_starts.get(k, 0) * 10 >= count[k]:
            return first_word[k]
        return first.get(k, first_any[k])

    return [seed(k) for k in ranked]


CALIBRATION_MAX_TOKENS = 32768
"""Tokens of the caller's calibration text the model reads when ranking ids (the rest is not read)."""
CALIBRATION_WINDOW = 512
CALIBRATION_MIN_MASS = 1e-3
"""Probability an id must gather over the calibration text to be ranked by it (below: by the model's own samples)."""


def _sample_mass(model: Any, tokenizer: Any, vocab: int, tokens: int) -> tuple[torch.Tensor, list[int]]:
    """The probability the model gave each id while writing `tokens` tokens after each script seed."""
    from transformers import LogitsProcessor, LogitsProcessorList

    mass = torch.zeros(vocab, dtype=torch.float64)

    class _Mass(LogitsProcessor):  # type: ignore[misc]
        def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
            mass.add_(torch.softmax(scores.double(), dim=-1).sum(dim=0)[:vocab])
            return scores

    bos = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else model.config.bos_token_id
    seeds = script_seeds(tokenizer.convert_ids_to_tokens(list(range(vocab))))
    start = torch.tensor([[int(bos), seed] for seed in seeds] or [[int(bos)]], dtype=torch.long)
    with torch.random.fork_rng(), torch.no_grad():
        torch.manual_seed(SAMPLING_SEED)
        model.generate(
            start,
            do_sample=True,
            temperature=1.0,
            top_k=0,
            top_p=1.0,
            max_new_tokens=tokens,
            logits_processor=LogitsProcessorList([_Mass()]),
            pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else int(bos),
        )
    return mass, seeds


def calibration_mass(model: Any, tokenizer: Any, vocab: int, texts: Sequence[str]) -> torch.Tensor:
    """The probability the model gives each id over the caller's `texts` (read in windows of
    CALIBRATION_WINDOW tokens after BOS, at most CALIBRATION_MAX_TOKENS in all, texts interleaved).

    An id that the model predicts on the app's own text is one whose output-projection
    error costs quality there; one it reads there costs it through the lookup. Both count.
    """
    bos = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else model.config.bos_token_id
    per_text = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    budget = CALIBRATION_MAX_TOKENS // max(1, len(per_text))
    mass = torch.zeros(vocab, dtype=torch.float64)
    with torch.no_grad():
        for ids in per_text:
            ids = ids[:budget]
            for start in range(0, len(ids), CALIBRATION_WINDOW - 1):
                chunk = [int(bos), *ids[start : start + CALIBRATION_WINDOW - 1]]
                logits = model(torch.tensor([chunk], dtype=torch.long), use_cache=False).logits[0]
                mass.add_(torch.softmax(logits.double(), dim=-1).sum(dim=0)[:vocab])
                mass.index_add_(
                    0, torch.tensor(chunk[1:], dtype=torch.long), torch.ones(len(chunk) - 1, dtype=torch.float64)
                )
    return mass


RANKING_FILE = "gemma3-table-ranking.npz"
"""In converters/: the probability Gemma 3 270M gives each id over held-out prose in twelve
languages (benchmarks/table_ranking.py writes it; its docstring names the texts), and the
sha256 of the vocabulary it is for."""


def shipped_mass(
    pieces: Sequence[str | None], *, trimmed: tuple[Sequence[int], str] | None = None
) -> torch.Tensor | None:
    """The multilingual ranking edgekit ships (RANKING_FILE) when it is for this vocabulary, else None.

    `trimmed`: (the kept old ids, the original vocabulary's sha256) of a vocabulary trimmed by
    `convert --vocab-from` (vocab.kept_ids): the ranking of the original, at the kept ids.
    """
    import numpy as np

    from edgekit._data import data_dir

    path = data_dir("converters") / RANKING_FILE
    if not path.is_file():
        return None
    with np.load(path) as data:
        mass = data["mass"].astype(np.float64)
        if trimmed is not None:
            kept, original = trimmed
            if str(data["vocab_sha256"]) != original or len(kept) != len(pieces) or max(kept) >= mass.shape[0]:
                return None
            return torch.from_numpy(mass[np.asarray(kept, dtype=np.int64)])
        if str(data["vocab_sha256"]) != vocab_sha256(pieces) or mass.shape != (len(pieces),):
            return None
        return torch.from_numpy(mass)


def token_order(model_dir: Path, *, tokens: int = SAMPLED_TOKENS, calibration: Sequence[str] = ()) -> torch.Tensor:
    """Every token id once, the ones the model uses most first: which ids get the 8-bit half.

    Token ids are not ordered by use (in Gemma 3, a sixth of English news tokens have ids
    above 196,608). Each id is ranked by an even mixture of two probability distributions
    over the vocabulary:

    - the model's own writing: from BOS and one frequent token of each of the SCRIPTS
      writing systems with the most pieces in its vocabulary (script_seeds), `tokens`
      tokens each (temperature 1, seeded), the probability it gave each id over those steps;
    - for Gemma 3's vocabulary, what the model predicts and reads on held-out prose in
      twelve languages (shipped_mass, RANKING_FILE), which the samples alone cover unevenly;
      for a vocabulary trimmed by `--vocab-from` (vocab.MARKER), that ranking at the kept ids.

    Special tokens (BOS, EOS, padding, the tokenizer's own) come first whatever they score;
    in a trimmed vocabulary, the ids its texts use (vocab.by_use) next, the most frequent first.
    With `calibration` (the app's own texts), the ids the model predicts or reads there
    (calibration_mass of at least CALIBRATION_MIN_MASS) come next, by that mass.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    vocab = int(model.config.vocab_size)
    mass, seeds = _sample_mass(model, tokenizer, vocab, tokens)
    mass = mass / (float(mass.sum()) or 1.0)
    shipped = shipped_mass(tokenizer.convert_ids_to_tokens(list(range(vocab))), trimmed=kept_ids(model_dir))
    if shipped is not None:
        mass = 0.5 * mass + 0.5 * shipped / (float(shipped.sum()) or 1.0)
    special = {int(i) for i in tokenizer.all_special_ids if 0 <= int(i) < vocab}
    eos = model.generation_config.eos_token_id
    special |= {int(i) for i in (eos if isinstance(eos, list) else [eos]) if i is not None and 0 <= int(i) < vocab}
    special |= {int(i) for i in seeds}
    # One key, sorted ascending and stable (equal keys keep id order): specials, then a
    # trimmed vocabulary's text ids by their use, then the calibrated ids by their mass,
    # then the rest by the mixed mass.
    key = -mass / (float(mass.max()) or 1.0)  # in [-1, 0]
    if calibration:
        cal = calibration_mass(model, tokenizer, vocab, calibration)
        chosen = cal >= CALIBRATION_MIN_MASS
        key = torch.where(chosen, -1.0 - cal / float(cal.max()), key)  # in [-2, -1)
    used = by_use(model_dir)
    if used:
        key[torch.tensor(used, dtype=torch.long)] = -3.0 + torch.arange(len(used), dtype=key.dtype) / len(used)
    key[list(special)] = float("-inf")
    return torch.sort(key, stable=True).indices


def prepare(
    source: Path, dest: Path, rows: int, *, calibration: Sequence[Path] = ()
) -> tuple[Path, str, TableSplitRecord]:
    """Rank the ids (token_order, steered by the `calibration` text files), write the split
    checkpoint into `dest`, register the class.

    Returns what litert-torch's export needs (the checkpoint folder, `auto_model_override`)
    and the manifest's record of the split.
    """
    order = token_order(source, calibration=[Path(c).read_text(encoding="utf-8") for c in calibration])
    model_dir = write_checkpoint(source, dest, rows, order)
    ids_8bit = sorted(int(i) for i in order[:rows])
    record = TableSplitRecord(
        rows_8bit=rows,
        rows_4bit=int(order.numel()) - rows,
        ranking=(
            "special tokens first; "
            + ("then the ids the --vocab-from texts use, the most frequent first; " if by_use(source) else "")
            + (
                f"then the ids the model predicts or reads on the {len(calibration)} calibration text(s), by "
                f"probability plus count over up to {CALIBRATION_MAX_TOKENS} tokens; "
                if calibration
                else ""
            )
            + f"then the model's own probability of each id over {SAMPLED_TOKENS} tokens it wrote after a "
            f"frequent token of each of the {SCRIPTS} writing systems of its vocabulary with the most "
            f"pieces (seed {SAMPLING_SEED})"
        ),
        ids_8bit_sha256=hashlib.sha256(json.dumps(ids_8bit).encode()).hexdigest(),
    )
    return model_dir, register(), record
