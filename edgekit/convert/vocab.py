"""Only the vocabulary an app uses: a checkpoint folder with its table trimmed to the ids its text needs.

    read_texts(paths)                       the --vocab-from files checked (UTF-8, not empty) and hashed, in blocks
    select(src_dir, texts, min_count, target_size, fill) -> Trim
                                            which ids to keep; InputError for a tokenizer edgekit cannot trim
    write_trimmed(src_dir, trim, out_dir)   the trimmed checkpoint folder (for export)
    by_use(model_dir)                       a trimmed folder's text ids, the most frequent first

What is kept (`select`), up to `target_size` ids in all (with `fill` and no target, those
the tokenizer needs and a DEFAULT_SHARE-th of the vocabulary):
every added and special token but Gemma's `<unusedN>` placeholders (a text that contains
one keeps it); the ids of the chat template's own text; every byte piece (`<0x00>`..`<0xFF>`
of a byte-fallback BPE, or the 256 base symbols of a byte-level BPE), so that any text
still encodes; the ids the texts tokenize to (those seen at least `min_count` times), the
most frequent first; then, with `fill`, pieces of the texts' own writing systems that the
texts did not use (fill_order); and, for every kept piece, the pieces the BPE builds it
from (its merge tree, as the tokenizers library applies merges: lowest rank first, then
leftmost). A merge is kept when its two parts and its result are. Text built only of kept
pieces then tokenizes as before; other text falls to smaller pieces and, at worst, to bytes.

Why fill: held-out text in the app's language still holds words its corpus never had,
mostly names, and a word the trimmed tokenizer writes in pieces the model never saw it in
costs several bits (docs/benchmarks.md). Without fill and target, every id of the texts is
kept and nothing else but what the tokenizer needs.

New ids are the kept old ids in their order (`<pad>`, `<eos>`, `<bos>` of Gemma keep 0, 1, 2).
The tokenizer.json layout is the tokenizers library's (tokenizers/src/models/bpe/model.rs:
`vocab`, `merges` as pairs or "a b" strings, `byte_fallback`; added_tokens with ids;
TemplateProcessing's special_tokens ids). litert-torch bundles the tokenizer the
checkpoint's transformers tokenizer saves (export_lib.export_tokenizer, 0.10): a folder
with only tokenizer.json bundles that one, so a trimmed folder holds no tokenizer.model.
"""

from __future__ import annotations

import codecs
import dataclasses
import hashlib
import json
import re
import shutil
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from edgekit.artifact import VocabSource, VocabTextFile
from edgekit.errors import InputError

MARKER = "edgekit-vocab.json"
"""In a trimmed checkpoint folder: the kept old ids, the original vocabulary's hash and the new ids
the texts use, the most frequent first (split_table reads it to rank the trimmed ids: the texts'
first, then by the shipped ranking of the full vocabulary)."""
TRIMMABLE_MODEL_TYPES = ("gemma3_text",)
DEFAULT_SHARE = 4
"""With fill and no target, a trimmed table keeps the ids the tokenizer needs and 1/DEFAULT_SHARE of
the vocabulary more (65,934 of Gemma 3's 262,144 ids): with split_table's 8-bit rows for a trimmed
table, Gemma 3 270M's artifact stays under 150 MB and decodes about 1.6x the full one on a 2-core
x86_64 (docs/benchmarks.md)."""
FILL_SCRIPT_SHARE = 0.01
"""A writing system is the texts' own when at least this share of their letter tokens is in it."""
_UNUSED = re.compile(r"<unused\d+>")
_BYTE_PIECE = re.compile(r"<0x[0-9A-F]{2}>")
_TEXT_CHUNK = re.compile(r"(?<=\n)(?=[^\n])")
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model")
BLOCK_BYTES = 1 << 20
"""A --vocab-from file is read in blocks of this many bytes (characters, when counting): a corpus
of gigabytes is never held in memory whole. (8 MiB blocks took about 170 MB more at their peak on
a 211 MB corpus, for no time won: a block's text, its chunks and the text carried are copies of it.)"""
_BATCH_CHUNKS = 4096
MAX_CHUNK_CHARS = 1 << 16
"""A line longer than this many characters (a corpus written as one line: a JSON document, prose
without newlines) is cut before its last space in the first MAX_CHUNK_CHARS (at MAX_CHUNK_CHARS if
it has none), and so on: uncut, such a line was carried from block to block and split again for
each, and tokenized whole. (32 MB of German words on one line counted in 43 s with Gemma 3's
tokenizer, against 7.6 s as lines of 20 words; cut, in 6.5 s, to the same counts:
benchmarks/vocab_long_line.py, docs/benchmarks.md.) No line of the corpora in docs/benchmarks.md
comes near it (the longest has 2,698): their chunks, and the ids kept, are unchanged."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class VocabText:
    """One --vocab-from file, checked (UTF-8, not empty): its path and hash, not its text."""

    path: Path
    sha256: str
    size_bytes: int


@dataclasses.dataclass(frozen=True, kw_only=True)
class Trim:
    """Which old ids a trimmed checkpoint keeps, in order (new id = index), and why."""

    kept: tuple[int, ...]
    original_vocab_size: int
    original_vocab_sha256: str
    """vocab_sha256 of the original pieces."""
    required: int
    """Ids kept whatever the text: added and special tokens, chat template, byte pieces, their merge trees."""
    from_text: int
    """Distinct ids the texts tokenize to."""
    filled: int = 0
    """Ids added by fill_order beyond the texts' own (their merge trees included)."""
    by_use: tuple[int, ...] = ()
    """The kept old ids the texts tokenize to, the most frequent first (split_table ranks them first)."""
    texts: tuple[VocabText, ...]
    min_count: int
    target_size: int | None

    @property
    def kept_sha256(self) -> str:
        """sha256 over the kept old ids, as JSON (e.g. "[0, 1, 2, ...]")."""
        return hashlib.sha256(json.dumps(list(self.kept)).encode()).hexdigest()

    def record(self) -> VocabSource:
        """The manifest's record of the trim (`source.vocab`)."""
        return VocabSource(
            kept_ids=len(self.kept),
            kept_ids_sha256=self.kept_sha256,
            original_vocab_size=self.original_vocab_size,
            original_vocab_sha256=self.original_vocab_sha256,
            required_ids=self.required,
            text_ids=self.from_text,
            filled_ids=self.filled,
            min_count=self.min_count,
            target_size=self.target_size,
            texts=tuple(VocabTextFile(path=str(t.path.resolve()), sha256=t.sha256) for t in self.texts),
        )


def read_texts(paths: Sequence[Path], *, block_bytes: int = BLOCK_BYTES) -> tuple[VocabText, ...]:
    """Each --vocab-from file, checked in one pass of `block_bytes` blocks; InputError (one line) if one is
    missing, not UTF-8 or empty."""
    return tuple(_checked_text(path, block_bytes) for path in paths)


def _checked_text(path: Path, block_bytes: int) -> VocabText:
    if not path.is_file():
        raise InputError(f"--vocab-from {path} does not exist: give the app's own text file", path=path)
    digest = hashlib.sha256()
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset, blank = 0, True
    with open(path, "rb") as f:
        while True:
            block = f.read(block_bytes)
            # The decoder holds back a character cut by the block's end: its bytes start before `offset`.
            held = len(decoder.getstate()[0])
            try:
                piece = decoder.decode(block, final=not block)
            except UnicodeDecodeError as exc:
                raise InputError(
                    f"--vocab-from {path} is not UTF-8 (byte {offset - held + exc.start}): convert it to UTF-8",
                    path=path,
                ) from None
            blank = blank and not piece.strip()
            if not block:
                break
            digest.update(block)
            offset += len(block)
    if blank:
        raise InputError(f"--vocab-from {path} is empty: give the app's own text", path=path)
    return VocabText(path=path, sha256=digest.hexdigest(), size_bytes=offset)


def _tokenizer_json(src_dir: Path, model_type: str) -> dict[str, Any]:
    """The folder's tokenizer.json, checked to be one edgekit can trim; InputError naming what is not."""
    if model_type not in TRIMMABLE_MODEL_TYPES:
        raise InputError(
            f"--vocab-from trims {', '.join(TRIMMABLE_MODEL_TYPES)} checkpoints (a tied table and a BPE "
            f"tokenizer.json); model_type {model_type!r} is not one: convert it without --vocab-from"
        )
    file = src_dir / "tokenizer.json"
    if not file.is_file():
        raise InputError(
            f"--vocab-from cannot trim {src_dir}'s tokenizer: it has no tokenizer.json (a SentencePiece "
            f"tokenizer.model alone is not trimmed); save the tokenizer with transformers to write one",
            path=src_dir,
        )
    data: dict[str, Any] = json.loads(file.read_text(encoding="utf-8"))
    model = data.get("model") or {}
    kind = model.get("type")
    if kind != "BPE" or not isinstance(model.get("vocab"), dict) or not isinstance(model.get("merges"), list):
        raise InputError(
            f"--vocab-from cannot trim {file}: it is a {kind} tokenizer and edgekit trims BPE tokenizers (Gemma 3's)",
            path=file,
        )
    if model.get("continuing_subword_prefix") or model.get("end_of_word_suffix") or model.get("dropout"):
        raise InputError(
            f"--vocab-from cannot trim {file}: its BPE uses a subword prefix/suffix or dropout, which edgekit "
            f"does not rebuild",
            path=file,
        )
    if not model.get("byte_fallback") and not _byte_level(data):
        raise InputError(
            f"--vocab-from cannot trim {file}: its BPE has neither byte fallback nor a byte-level alphabet, "
            f"so text outside the kept pieces would not encode",
            path=file,
        )
    return data


def _byte_level(data: dict[str, Any]) -> bool:
    def walk(node: Any) -> bool:
        if isinstance(node, dict):
            return node.get("type") == "ByteLevel" or any(walk(v) for v in node.values())
        if isinstance(node, list):
            return any(walk(v) for v in node)
        return False

    return walk(data.get("pre_tokenizer"))


def _merge_pairs(merges: list[Any]) -> list[tuple[str, str]]:
    pairs = []
    for m in merges:
        if isinstance(m, str):
            a, _, b = m.partition(" ")
            pairs.append((a, b))
        else:
            pairs.append((m[0], m[1]))
    return pairs


def _merge_tree(piece: str, ranks: dict[tuple[str, str], int]) -> list[str] | None:
    """The pieces BPE makes on the way to `piece` from its characters (lowest rank, then leftmost
    first, as tokenizers' Word::merge_all), or None when BPE does not build `piece` from them."""
    symbols = list(piece)
    made: list[str] = []
    while len(symbols) > 1:
        best, at = None, -1
        for i in range(len(symbols) - 1):
            r = ranks.get((symbols[i], symbols[i + 1]))
            if r is not None and (best is None or r < best):
                best, at = r, i
        if best is None:
            break
        symbols[at : at + 2] = [symbols[at] + symbols[at + 1]]
        made.append(symbols[at])
    return [*list(piece), *made] if symbols == [piece] else None


def _byte_level_alphabet() -> set[str]:
    from tokenizers import pre_tokenizers

    return set(pre_tokenizers.ByteLevel.alphabet())


def _chat_ids(tokenizer: Any) -> set[int]:
    """The ids of the chat template's own text (its turn markers, role names, newlines)."""
    if not getattr(tokenizer, "chat_template", None):
        return set()
    conversation = [
        {"role": "user", "content": ""},
        {"role": "assistant", "content": ""},
        {"role": "user", "content": ""},
    ]
    try:
        rendered = tokenizer.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)
    except Exception:  # a template may refuse this conversation; its markers are added tokens anyway
        return set()
    return set(tokenizer(str(rendered), add_special_tokens=False)["input_ids"])


def _stream_chunks(blocks: Iterable[str]) -> Iterator[str]:
    """The blocks' text joined, in the chunks the tokenizer reads: cut where a line starts (newline runs
    stay whole), and a line longer than MAX_CHUNK_CHARS cut again (_line_pieces). A BPE without
    pre-splitting (Gemma's) reads each chunk as one word, and the tokenizer's cost grows with a word's
    length. The text after a block's last line start is carried into the next (where its line ends is
    not known before then), less the pieces cut off its front (a cut looks no further)."""
    carry = ""
    for block in blocks:
        *done, carry = _TEXT_CHUNK.split(carry + block)
        for line in done:
            yield from _line_pieces(line)
        *heads, carry = _line_pieces(carry) or [""]
        yield from heads
    yield from _line_pieces(carry)


def _line_pieces(line: str) -> list[str]:
    """`line` in pieces of at most MAX_CHUNK_CHARS (none if it is empty), each cut before the last space
    in the first MAX_CHUNK_CHARS characters of what is left (the space starts the next piece's first
    word, as Gemma's pieces start with theirs), or at MAX_CHUNK_CHARS where there is none."""
    pieces = []
    while len(line) > MAX_CHUNK_CHARS:
        at = line.rfind(" ", 1, MAX_CHUNK_CHARS)
        at = at if at > 0 else MAX_CHUNK_CHARS
        pieces.append(line[:at])
        line = line[at:]
    return [*pieces, line] if line else pieces


def _file_blocks(path: Path, block_chars: int) -> Iterator[str]:
    # newline="": "\r\n" stays as it is in the file (the texts are counted as their bytes decode).
    with open(path, encoding="utf-8", newline="") as f:
        while block := f.read(block_chars):
            yield block


def _count(tokenizer: Any, texts: Iterable[VocabText], *, block_chars: int = BLOCK_BYTES) -> Counter[int]:
    """How often each id occurs in the texts, each read in blocks of `block_chars` characters."""
    counts: Counter[int] = Counter()
    backend = tokenizer.backend_tokenizer

    def add(batch: list[str]) -> None:
        for enc in backend.encode_batch(batch, add_special_tokens=False):
            counts.update(enc.ids)

    for t in texts:
        batch: list[str] = []
        for chunk in _stream_chunks(_file_blocks(t.path, block_chars)):
            batch.append(chunk)
            if len(batch) == _BATCH_CHUNKS:
                add(batch)
                batch = []
        add(batch)
    return counts


def _scripts(counts: Counter[int], piece_of: dict[int, str]) -> list[str]:
    """The writing systems of the texts, the most used first: FILL_SCRIPT_SHARE or more of their letter tokens each."""
    per: Counter[str] = Counter()
    for i, n in counts.items():
        script = piece_script(piece_of.get(i) or "")
        if script is not None:
            per[script] += n
    total = sum(per.values())
    return [k for k, n in sorted(per.items(), key=lambda kv: (-kv[1], kv[0])) if n >= FILL_SCRIPT_SHARE * total]


def fill_order(pieces: dict[int, str], scripts: Sequence[str]) -> list[int]:
    """The vocabulary's pieces of `scripts` (piece_script; the texts' main one first),
    in the order they are added to a trimmed table when the texts leave room: single letters
    (so the texts' writing systems never fall to bytes), then words: word starts with a capital
    (names, which any language's text borrows, and German's nouns) and, in the writing systems
    after the first, every word start and every piece that starts with a capital (a Japanese
    text's English: its terms and names); then the rest. Each group by id, as a SentencePiece
    vocabulary's ids rise as pieces get rarer.

    Chosen on held-out German quotes against other orders (docs/benchmarks.md): by the model's
    own probability over the texts, or over text it wrote from them, each won back a third of
    what this order does, or less; every word start of the main writing system, not only
    capitalized ones, about half. The second writing system's words were chosen
    on the Japanese manuals' and FAQ's English.
    """
    main = scripts[0] if scripts else None
    groups: tuple[list[int], list[int], list[int]] = ([], [], [])
    for i in sorted(pieces):
        piece = pieces[i]
        script = piece_script(piece)
        if script not in scripts:
            continue
        letters = piece.lstrip("\u2581")
        word_start = piece.startswith("\u2581")
        if len(letters) == 1:
            groups[0].append(i)
        elif (word_start and letters[0].isupper()) or (script != main and (word_start or letters[0].isupper())):
            groups[1].append(i)
        else:
            groups[2].append(i)
    return [*groups[0], *groups[1], *groups[2]]


def select(
    src_dir: Path,
    model_type: str,
    texts: Sequence[VocabText],
    *,
    min_count: int = 1,
    target_size: int | None = None,
    fill: bool = True,
    fill_ids: Sequence[int] | None = None,
) -> Trim:
    """The ids checkpoint folder `src_dir` keeps for `texts` (see the module docstring).

    `fill_ids`: the order the room is filled in (default: fill_order of the texts' writing
    systems; benchmarks/vocab_fill_orders.py compares others).

    InputError if the tokenizer cannot be trimmed, if `target_size` is below the ids the
    tokenizer and its chat template need, or if the texts keep no id of their own.
    """
    from transformers import AutoTokenizer

    data = _tokenizer_json(src_dir, model_type)
    config = json.loads((src_dir / "config.json").read_text())
    vocab_size = int(config["vocab_size"])
    model = data["model"]
    vocab: dict[str, int] = model["vocab"]
    piece_of: dict[int, str] = {i: p for p, i in vocab.items()}
    for added in data.get("added_tokens") or []:
        piece_of[int(added["id"])] = added["content"]
    ranks = {pair: r for r, pair in enumerate(_merge_pairs(model["merges"]))}
    model_ids = set(vocab.values())
    tokenizer = AutoTokenizer.from_pretrained(str(src_dir))

    required: set[int] = set()
    for added in data.get("added_tokens") or []:
        if not _UNUSED.fullmatch(added["content"]):
            required.add(int(added["id"]))
    for key in ("bos_token_id", "eos_token_id", "pad_token_id", "unk_token_id"):
        required |= set(_ids(config.get(key)))
    required |= {int(i) for i in tokenizer.all_special_ids}
    if model.get("unk_token") in vocab:
        required.add(vocab[model["unk_token"]])
    if model.get("byte_fallback"):
        required |= {i for p, i in vocab.items() if _BYTE_PIECE.fullmatch(p)}
    if _byte_level(data):
        alphabet = _byte_level_alphabet()
        required |= {i for p, i in vocab.items() if p in alphabet}
    required |= _chat_ids(tokenizer)
    required = {i for i in required if 0 <= i < vocab_size}

    def closure(ids: Iterable[int]) -> set[int]:
        out: set[int] = set()
        for i in ids:
            piece = piece_of.get(i)
            tree = _merge_tree(piece, ranks) if piece is not None and i in model_ids else None
            out.add(i)
            for part in tree or ():
                if part in vocab:
                    out.add(vocab[part])
        return out

    required = closure(required)
    if target_size is None and fill:
        target_size = len(required) + vocab_size // DEFAULT_SHARE
    if target_size is not None and target_size < len(required):
        raise InputError(
            f"--vocab-size {target_size} is below the {len(required)} ids the tokenizer and its chat template "
            f"need (special and added tokens, byte pieces, the template's own text): ask for more"
        )
    counts = _count(tokenizer, texts)
    seen = {i for i, n in counts.items() if n >= min_count and 0 <= i < vocab_size}
    if not seen:
        raise InputError(
            f"--vocab-min-count {min_count} keeps no id of the --vocab-from text (its most frequent id occurs "
            f"{max(counts.values(), default=0)} times): lower it"
        )
    kept = set(required)
    for i in sorted(seen, key=lambda i: (-counts[i], i)):
        if i in kept:
            continue
        more = closure([i]) - kept
        if target_size is not None and len(kept) + len(more) > target_size:
            continue
        kept |= more
    by_use = tuple(i for i in sorted(seen, key=lambda i: (-counts[i], i)) if i in kept)
    filled = 0
    if fill and target_size is not None:
        text_kept = len(kept)
        if fill_ids is None:
            fill_ids = fill_order({i: p for i, p in piece_of.items() if i in model_ids}, _scripts(counts, piece_of))
        for i in fill_ids:
            if len(kept) >= target_size:
                break
            if i in kept or i not in model_ids:
                continue
            more = closure([i]) - kept
            if len(kept) + len(more) <= target_size:
                kept |= more
        filled = len(kept) - text_kept
    return Trim(
        kept=tuple(sorted(kept)),
        original_vocab_size=vocab_size,
        # As split_table.token_order hashes a vocabulary (the shipped ranking is looked up by it).
        original_vocab_sha256=vocab_sha256(tokenizer.convert_ids_to_tokens(list(range(vocab_size)))),
        required=len(required),
        from_text=len({i for i in counts if 0 <= i < vocab_size}),
        filled=filled,
        by_use=by_use,
        texts=tuple(texts),
        min_count=min_count,
        target_size=target_size,
    )


def _ids(value: Any) -> list[int]:
    if value is None:
        return []
    if isinstance(value, list):
        return [int(v) for v in value if v is not None]
    return [int(value)]


def _remap_ids(value: Any, new: dict[int, int]) -> Any:
    """A config's token id (or list of ids) in the new numbering; an id not kept becomes None (dropped from lists)."""
    if value is None:
        return None
    if isinstance(value, list):
        return [new[int(v)] for v in value if v is not None and int(v) in new]
    return new.get(int(value))


def _trimmed_tokenizer(data: dict[str, Any], new: dict[int, int]) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(json.dumps(data))
    model = out["model"]
    vocab = {p: new[i] for p, i in model["vocab"].items() if i in new}
    model["vocab"] = dict(sorted(vocab.items(), key=lambda kv: kv[1]))
    merges = []
    for m, (a, b) in zip(model["merges"], _merge_pairs(model["merges"]), strict=True):
        if a in vocab and b in vocab and a + b in vocab:
            merges.append(m)
    model["merges"] = merges
    out["added_tokens"] = [{**t, "id": new[int(t["id"])]} for t in out.get("added_tokens") or [] if int(t["id"]) in new]

    def fix(node: Any) -> Any:  # TemplateProcessing: special_tokens: {name: {"id", "ids", "tokens"}}
        if isinstance(node, dict):
            if node.get("type") == "TemplateProcessing":
                for entry in (node.get("special_tokens") or {}).values():
                    entry["ids"] = [new[int(i)] for i in entry.get("ids", [])]
            for v in node.values():
                fix(v)
        elif isinstance(node, list):
            for v in node:
                fix(v)
        return node

    fix(out.get("post_processor"))
    return out


def write_trimmed(src_dir: Path, trim: Trim, out_dir: Path) -> Path:
    """Checkpoint folder `out_dir`: `src_dir` with only `trim.kept`'s rows of the table (and of an
    untied output projection), config.json, generation_config.json, tokenizer.json and
    tokenizer_config.json in the new ids, and MARKER. Returns `out_dir`."""
    import torch
    from safetensors import safe_open
    from safetensors.torch import save_file

    new = {old: i for i, old in enumerate(trim.kept)}
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = torch.tensor(trim.kept, dtype=torch.long)
    tensors: dict[str, torch.Tensor] = {}
    for path in sorted(src_dir.glob("*.safetensors")):
        with safe_open(str(path), framework="pt") as f:
            for name in f.keys():  # noqa: SIM118 (safe_open has no __iter__)
                t = f.get_tensor(name)
                if name.endswith(("embed_tokens.weight", "lm_head.weight")) and t.shape[0] == trim.original_vocab_size:
                    t = t.index_select(0, rows).contiguous()
                tensors[name] = t
    save_file(tensors, str(out_dir / "model.safetensors"), metadata={"format": "pt"})

    config = json.loads((src_dir / "config.json").read_text())
    config["vocab_size"] = len(trim.kept)
    for key in ("bos_token_id", "eos_token_id", "pad_token_id", "unk_token_id"):
        if key in config:
            config[key] = _remap_ids(config[key], new)
    (out_dir / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    gen = src_dir / "generation_config.json"
    if gen.is_file():
        generation = json.loads(gen.read_text())
        for key in ("bos_token_id", "eos_token_id", "pad_token_id", "decoder_start_token_id"):
            if key in generation:
                generation[key] = _remap_ids(generation[key], new)
        (out_dir / "generation_config.json").write_text(json.dumps(generation, indent=2) + "\n")
    data = json.loads((src_dir / "tokenizer.json").read_text(encoding="utf-8"))
    (out_dir / "tokenizer.json").write_text(json.dumps(_trimmed_tokenizer(data, new), ensure_ascii=False))
    tok_config = src_dir / "tokenizer_config.json"
    if tok_config.is_file():
        tc = json.loads(tok_config.read_text(encoding="utf-8"))
        decoder = tc.get("added_tokens_decoder")
        if isinstance(decoder, dict):
            tc["added_tokens_decoder"] = {str(new[int(k)]): v for k, v in decoder.items() if int(k) in new}
        (out_dir / "tokenizer_config.json").write_text(json.dumps(tc, indent=2, ensure_ascii=False) + "\n")
    skip = {"config.json", "generation_config.json", "model.safetensors.index.json", MARKER, *_TOKENIZER_FILES}
    for path in sorted(src_dir.iterdir()):
        if path.is_file() and path.suffix != ".safetensors" and path.name not in skip:
            shutil.copy2(path, out_dir / path.name)
    stm = src_dir / "special_tokens_map.json"
    if stm.is_file():  # names tokens by their text, not their ids
        shutil.copy2(stm, out_dir / stm.name)
    (out_dir / MARKER).write_text(
        json.dumps(
            {
                "original_vocab_size": trim.original_vocab_size,
                "original_vocab_sha256": trim.original_vocab_sha256,
                "kept_ids": list(trim.kept),
                "by_use": [new[i] for i in trim.by_use],
            }
        )
        + "\n"
    )
    return out_dir


def _marker(model_dir: Path) -> dict[str, Any] | None:
    """MARKER's record of a trimmed checkpoint folder; None for another."""
    marker = model_dir / MARKER
    if not marker.is_file():
        return None
    data: dict[str, Any] = json.loads(marker.read_text())
    return data


def original_vocab_size(model_dir: Path) -> int | None:
    """The untrimmed vocabulary's size of a trimmed checkpoint folder; None for another."""
    data = _marker(model_dir)
    return None if data is None else int(data["original_vocab_size"])


def kept_ids(model_dir: Path) -> tuple[list[int], str] | None:
    """(the kept old ids, the original vocabulary's sha256) of a trimmed checkpoint folder; None for another."""
    data = _marker(model_dir)
    if data is None:
        return None
    return [int(i) for i in data["kept_ids"]], str(data["original_vocab_sha256"])


def by_use(model_dir: Path) -> list[int] | None:
    """The new ids the --vocab-from texts tokenize to, the most frequent first, of a trimmed
    checkpoint folder; None for another, or one trimmed before MARKER recorded them."""
    data = _marker(model_dir)
    if data is None or "by_use" not in data:
        return None
    return [int(i) for i in data["by_use"]]


def piece_script(piece: str) -> str | None:
    """The writing system of a vocabulary piece: the Unicode name's first word of its first letter
    (LATIN, CYRILLIC, CJK, HIRAGANA, HANGUL...), or None for a piece without letters."""
    import unicodedata

    text = piece.lstrip("\u2581")
    if not text or not text[0].isalpha():
        return None
    try:
        return unicodedata.name(text[0]).split()[0]
    except ValueError:
        return None


def vocab_sha256(pieces: Sequence[str | None]) -> str:
    """A tokenizer's vocabulary as one hash: its pieces in id order."""
    return hashlib.sha256("\n".join(p or "" for p in pieces).encode()).hexdigest()
