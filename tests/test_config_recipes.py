"""ConvertConfig validation and the flag > recipe > default precedence."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import pytest

from edgekit._typed import to_data
from edgekit.artifact import EvalTextFile, SettingRecord
from edgekit.convert import ConvertConfig, Format, Quant, recipes
from edgekit.convert.checkpoint import Checkpoint
from edgekit.convert.example import RANDOM_WEIGHTS_MIN_AGREEMENT
from edgekit.convert.plan import make_plan
from edgekit.errors import InputError


def _ckpt(model_type: str = "gemma3_text") -> Checkpoint:
    return Checkpoint(path=Path("/nowhere"), model_type=model_type, files={}, parameter_count=1)


def test_format_follows_the_extension_when_not_given() -> None:
    assert ConvertConfig(output=Path("m.tflite")).format is Format.TFLITE
    assert ConvertConfig(output=Path("m.litertlm")).format is Format.LITERTLM


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"output": Path("m.bin")}, "must end in .litertlm"),
        ({"output": Path("m.tflite"), "format": Format.LITERTLM}, "does not end in .litertlm"),
        ({"output": Path("m.litertlm"), "quant": "int3"}, "unknown quant 'int3'"),
        ({"output": Path("m.litertlm"), "prefill_lengths": (0,)}, "positive integers"),
        ({"output": Path("m.litertlm"), "cache_length": 64, "prefill_lengths": (128,)}, "longer than the cache"),
        ({"output": Path("m.litertlm"), "threads": 0}, "at least 1"),
        ({"output": Path("m.litertlm"), "min_agreement": 1.5}, "between 0 and 1"),
        ({"output": Path("m.litertlm"), "max_nll_gap": -0.1}, "max NLL gap must be a number of nats/token >= 0"),
        ({"output": Path("m.litertlm"), "max_nll_gap": float("nan")}, "max NLL gap must be"),
        ({"output": Path("m.litertlm"), "eval_text": Path("/nowhere/prose.txt")}, "does not exist"),
    ],
)
def test_bad_config_names_the_bad_value(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InputError, match=message):
        ConvertConfig(**kwargs)  # type: ignore[arg-type]


def test_gemma3_recipe_defaults_and_sources() -> None:
    p = make_plan(_ckpt(), ConvertConfig(output=Path("m.litertlm")))
    assert p.recipe is not None and p.recipe.family == "gemma3"
    assert p.cache_length.value == 1024 and p.cache_length.source == "recipe:gemma3"
    assert p.quant.value is Quant.INT4
    assert p.prefill_lengths.value == (128,)
    assert p.lightweight.value is True
    assert p.min_agreement.value == 0.75
    assert p.max_nll_gap.value == 0.20 and p.max_nll_gap.source == "recipe:gemma3"
    assert p.eval_text.value == "builtin:report"


def test_random_weight_examples_convert_with_the_floors_off_unless_flagged() -> None:
    ckpt = dataclasses.replace(_ckpt(), random_weights=True)
    p = make_plan(ckpt, ConvertConfig(output=Path("m.litertlm")))
    assert p.min_agreement == recipes.Setting(RANDOM_WEIGHTS_MIN_AGREEMENT, "random-weights")
    assert p.max_nll_gap == recipes.Setting(None, "random-weights")
    flagged = make_plan(ckpt, ConvertConfig(output=Path("m.litertlm"), min_agreement=0.6, max_nll_gap=0.2))
    assert flagged.min_agreement == recipes.Setting(0.6, "caller")
    assert flagged.max_nll_gap == recipes.Setting(0.2, "caller")


def test_eval_text_flag_records_the_file_hash(tmp_path: Path) -> None:
    text = tmp_path / "prose.txt"
    text.write_text("some prose " * 40)
    p = make_plan(_ckpt(), ConvertConfig(output=Path("m.litertlm"), eval_text=text))
    assert p.settings().eval_text == SettingRecord(
        value=EvalTextFile(path=str(text.resolve()), sha256=hashlib.sha256(text.read_bytes()).hexdigest()),
        source="caller",
    )


def test_flag_beats_recipe_and_is_recorded() -> None:
    p = make_plan(
        _ckpt(), ConvertConfig(output=Path("m.litertlm"), cache_length=2048, quant=Quant.INT8, min_agreement=0.3)
    )
    settings = to_data(p.settings())
    assert settings["cache_length"] == {"value": 2048, "source": "caller"}
    assert settings["quant"] == {"value": "int8", "source": "caller"}
    assert settings["quant_recipe"]["value"] == "dynamic_wi8_afp32"
    assert settings["min_agreement"] == {"value": 0.3, "source": "caller"}
    assert settings["prefill_lengths"]["source"] == "recipe:gemma3"
    assert settings["format"]["source"] == "caller"
    # The CLI says its values came from its flags; the same values, the same recipe otherwise.
    cli = make_plan(
        _ckpt(),
        ConvertConfig(
            output=Path("m.litertlm"), cache_length=2048, quant=Quant.INT8, min_agreement=0.3, given_by="flag"
        ),
    )
    by_flag = to_data(cli.settings())
    assert by_flag["cache_length"] == {"value": 2048, "source": "flag"}
    assert by_flag["quant"]["source"] == by_flag["min_agreement"]["source"] == by_flag["format"]["source"] == "flag"
    assert by_flag["prefill_lengths"] == settings["prefill_lengths"]
    assert cli.settings().min_agreement.given and p.settings().min_agreement.given  # type: ignore[union-attr]
    with pytest.raises(InputError, match="given_by must be 'caller' or 'flag', got 'cli'"):
        ConvertConfig(output=Path("m.litertlm"), given_by="cli")


def test_model_without_recipe_gets_builtin_defaults_and_a_note() -> None:
    p = make_plan(_ckpt("qwen3"), ConvertConfig(output=Path("m.litertlm")))
    assert p.recipe is None
    assert p.cache_length == recipes.Setting(2048, "default")
    assert any("no edgekit recipe" in n for n in p.notes)


def test_int4_channel_warns() -> None:
    p = make_plan(_ckpt(), ConvertConfig(output=Path("m.litertlm"), quant=Quant.INT4_CHANNEL))
    assert p.quant.value.recipe_name == "dynamic_wi4_afp32"
    assert any("collapse" in n for n in p.notes)


def test_recipe_prefill_longer_than_flag_cache_is_refused() -> None:
    with pytest.raises(InputError, match="longer than the cache"):
        make_plan(_ckpt(), ConvertConfig(output=Path("m.litertlm"), cache_length=100))


def test_quant_recipes_map_to_upstream_names() -> None:
    assert {q.value: q.recipe_name for q in Quant} == {
        "int4": "edgekit_table_wi4b32_linear_wi8_afp32",
        "int4-table": "edgekit_table_wi4b32_linear_wi8_afp32",
        "int4-b32": "dynamic_wi4b32_afp32",
        "int4-b64": "dynamic_wi4b64_afp32",
        "int4-channel": "dynamic_wi4_afp32",
        "int8": "dynamic_wi8_afp32",
        "fp32": None,
    }


SHIPPED_RECIPE = Path(recipes.__file__).parents[2] / "converters" / "gemma3.toml"


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('family = "gemma3"\n', "", "Object missing required field `family`"),
        (
            "cache_length = 1024\n",
            'cache_length = "1024"\n',
            "Expected `int | null`, got `str` - at `$.defaults.cache_length`",
        ),
        ('quant = "int4"\n', 'quant = "int3"\n', "Invalid enum value 'int3' - at `$.defaults.quant`"),
    ],
    ids=["no family", "cache_length a string", "unknown quant"],
)
def test_a_bad_recipe_file_is_one_input_error_naming_the_file_and_key(
    tmp_path: Path, old: str, new: str, message: str
) -> None:
    shipped = SHIPPED_RECIPE.read_text()
    assert old in shipped
    path = tmp_path / "gemma3.toml"
    path.write_text(shipped.replace(old, new))
    with pytest.raises(InputError) as info:
        recipes.load_recipe(path)
    assert str(info.value) == f"recipe {path}: {message}"
    assert info.value.path == path
