"""The conversion cache key: every input that shapes the artifact is in it, the device transports are not."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import pytest

from edgekit import _versions
from edgekit._typed import to_data
from edgekit.convert import ConvertConfig, Quant, cache
from edgekit.convert.cache import cache_key
from edgekit.convert.checkpoint import Checkpoint
from edgekit.convert.plan import make_plan

CKPT = Checkpoint(
    path=Path("/nowhere"), model_type="gemma3_text", files={"model.safetensors": "ab" * 32}, parameter_count=1
)
CONFIG = ConvertConfig(output=Path("m.litertlm"))


@pytest.fixture(autouse=True)
def _pinned_versions(monkeypatch: pytest.MonkeyPatch) -> dict[str, str | None]:
    """Every distribution at version 1.0 unless a test sets it: the key no longer depends on this venv."""
    pinned: dict[str, str | None] = {}
    monkeypatch.setattr(_versions, "distribution_version", lambda name: pinned.get(name, "1.0"))
    return pinned


def _key(ckpt: Checkpoint = CKPT, config: ConvertConfig = CONFIG, verify_on: bool = True) -> str:
    return cache_key(ckpt, make_plan(ckpt, config), verify_on)


@pytest.mark.parametrize("name", _versions.DEVICE_DISTRIBUTIONS)
@pytest.mark.parametrize("version", ["9.9", None])
def test_a_device_transport_upgrade_or_removal_keeps_the_key(
    _pinned_versions: dict[str, str | None], name: str, version: str | None
) -> None:
    before = _key()
    _pinned_versions[name] = version
    assert _key() == before


@pytest.mark.parametrize("name", _versions.CONVERT_DISTRIBUTIONS)
def test_a_converting_tool_upgrade_changes_the_key(_pinned_versions: dict[str, str | None], name: str) -> None:
    before = _key()
    _pinned_versions[name] = "1.1"
    assert _key() != before


def test_edgekit_version_and_key_format_change_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    before = _key()
    monkeypatch.setattr(_versions, "__version__", "99.0")
    after_edgekit = _key()
    monkeypatch.setattr(cache, "CACHE_KEY_FORMAT", cache.CACHE_KEY_FORMAT + 1)
    assert len({before, after_edgekit, _key()}) == 3


def test_files_settings_and_verify_change_the_key() -> None:
    base = _key()
    other_files = dataclasses.replace(CKPT, files={"model.safetensors": "cd" * 32})
    assert _key(ckpt=other_files) != base
    assert _key(config=ConvertConfig(output=Path("m.litertlm"), quant=Quant.INT8)) != base
    assert _key(config=ConvertConfig(output=Path("m.litertlm"), cache_length=2048)) != base
    assert _key(verify_on=False) != base


def test_a_key_made_before_the_format_field_misses() -> None:
    # The format-1 key, written out here as it was computed: every key distribution's version
    # (the device transports' too) and no "format" field.
    plan = make_plan(CKPT, CONFIG)
    old_payload = {
        "files": CKPT.files,
        "settings": to_data(plan.settings()),
        "verify": True,
        "versions": {"edgekit": _versions.__version__} | dict.fromkeys(_versions.KEY_DISTRIBUTIONS, "1.0"),
        "table_split": plan.quant.value.splits_table,
    }
    old_key = hashlib.sha256(json.dumps(old_payload, sort_keys=True, default=str).encode()).hexdigest()
    assert _key() != old_key
    assert "adbutils" in _versions.KEY_DISTRIBUTIONS  # still reported by `edgekit --version` and in manifests
