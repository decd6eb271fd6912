"""The one typed configuration of a conversion, validated when built."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from edgekit.convert.recipes import Format, Quant
from edgekit.errors import InputError


@dataclasses.dataclass(frozen=True, kw_only=True)
class ConvertConfig:
    """What the caller asked for. None means "not given": the recipe or a default decides.

    `output` must end in `.litertlm` or `.tflite`; `format` defaults to what the
    extension says and must agree with it when given. `max_nll_gap` is in nats/token;
    `eval_text` is a UTF-8 prose file for the NLL gap (default: edgekit's built-in text).
    """

    output: Path
    quant: Quant | None = None
    prefill_lengths: tuple[int, ...] | None = None
    cache_length: int | None = None
    format: Format | None = None
    threads: int | None = None
    lightweight: bool | None = None
    verify: bool = True
    min_agreement: float | None = None
    max_nll_gap: float | None = None
    eval_text: Path | None = None
    calibration_texts: tuple[Path, ...] = ()
    """The app's own UTF-8 texts: they decide what the recipe calibrates (which ids of a split
    table get 8 bits). Empty: the model's own samples decide."""
    adapter: Path | None = None
    """A PEFT LoRA adapter folder, merged into the source checkpoint folder before export."""
    vocab_from: tuple[Path, ...] = ()
    """The app's own UTF-8 texts: the table keeps only the ids they need (vocab.select)."""
    vocab_min_count: int | None = None
    """With `vocab_from`: keep a text's id only if it occurs at least this often (default 1)."""
    vocab_size: int | None = None
    """With `vocab_from`: the number of ids to keep, the text's most frequent first (default: a
    quarter of the vocabulary with `vocab_fill`, else every id the text needs)."""
    vocab_fill: bool = True
    """With `vocab_from`: fill the room the text leaves with its writing systems' pieces (vocab.fill_order)."""
    force: bool = False
    verbose: bool = False
    given_by: str = "caller"
    """Where the values given here come from, as the manifest's settings record it: "caller"
    (Python code) or "flag" (the CLI's options)."""

    @property
    def output_format(self) -> Format:
        """The format to write (from `format`, else from the output's extension)."""
        assert self.format is not None  # __post_init__ always sets it
        return self.format

    def __post_init__(self) -> None:
        object.__setattr__(self, "output", Path(self.output))
        if self.quant is not None and not isinstance(self.quant, Quant):
            allowed = ", ".join(q.value for q in Quant)
            try:
                object.__setattr__(self, "quant", Quant(self.quant))
            except ValueError:
                raise InputError(f"unknown quant {self.quant!r}: choose one of {allowed}") from None
        suffix = self.output.suffix.lower()
        by_suffix = {f.suffix: f for f in Format}
        if self.format is None:
            if suffix not in by_suffix:
                raise InputError(
                    f"output {self.output} must end in .litertlm (LiteRT-LM bundle) or .tflite (bare model)"
                )
            object.__setattr__(self, "format", by_suffix[suffix])
        else:
            fmt = Format(self.format)
            object.__setattr__(self, "format", fmt)
            if suffix != fmt.suffix:
                raise InputError(
                    f"output {self.output} does not end in {fmt.suffix} as --format {fmt.value} "
                    f"needs: rename it or change --format"
                )
        if self.prefill_lengths is not None:
            lengths = tuple(self.prefill_lengths)
            if not lengths or any(not isinstance(n, int) or n <= 0 for n in lengths):
                raise InputError(f"prefill lengths must be positive integers, got {list(lengths)}")
            object.__setattr__(self, "prefill_lengths", tuple(sorted(set(lengths))))
        if self.cache_length is not None and self.cache_length <= 0:
            raise InputError(f"cache length must be a positive integer, got {self.cache_length}")
        if (
            self.cache_length is not None
            and self.prefill_lengths is not None
            and max(self.prefill_lengths) > self.cache_length
        ):
            raise InputError(
                f"prefill length {max(self.prefill_lengths)} is longer than the cache "
                f"({self.cache_length}): lower --prefill-lengths or raise --cache-length"
            )
        if self.given_by not in ("caller", "flag"):
            raise InputError(f"given_by must be 'caller' or 'flag', got {self.given_by!r}")
        if self.threads is not None and self.threads < 1:
            raise InputError(f"threads must be at least 1, got {self.threads}")
        if self.min_agreement is not None and not 0.0 <= self.min_agreement <= 1.0:
            raise InputError(f"min agreement must be between 0 and 1, got {self.min_agreement}")
        if self.max_nll_gap is not None and not (self.max_nll_gap >= 0.0 and self.max_nll_gap < float("inf")):
            raise InputError(f"max NLL gap must be a number of nats/token >= 0, got {self.max_nll_gap}")
        if self.eval_text is not None:
            object.__setattr__(self, "eval_text", Path(self.eval_text))
            if not self.eval_text.is_file():
                raise InputError(f"evaluation text {self.eval_text} does not exist", path=self.eval_text)
        if self.adapter is not None:
            object.__setattr__(self, "adapter", Path(self.adapter))
        object.__setattr__(self, "vocab_from", tuple(Path(t) for t in self.vocab_from))
        if self.vocab_from and self.format is not Format.LITERTLM:
            raise InputError(
                "--vocab-from renumbers the token ids, so the model needs its trimmed tokenizer beside it: "
                "write a .litertlm bundle (a bare .tflite carries no tokenizer)"
            )
        for name, value in (("--vocab-min-count", self.vocab_min_count), ("--vocab-size", self.vocab_size)):
            if value is None:
                continue
            if not self.vocab_from:
                raise InputError(f"{name} chooses what --vocab-from keeps: give --vocab-from FILE too")
            if not isinstance(value, int) or value < 1:
                raise InputError(f"{name} must be a positive integer, got {value!r}")
        texts = tuple(Path(t) for t in self.calibration_texts)
        object.__setattr__(self, "calibration_texts", texts)
        for text in texts:
            if not text.is_file():
                raise InputError(f"calibration text {text} does not exist", path=text)
            try:
                content = text.read_text(encoding="utf-8")
            except UnicodeDecodeError as exc:
                raise InputError(
                    f"calibration text {text} is not UTF-8 (byte {exc.start}): convert it to UTF-8", path=text
                ) from None
            if not content.strip():
                raise InputError(f"calibration text {text} is empty: give the app's own text", path=text)
