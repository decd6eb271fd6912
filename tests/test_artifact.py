"""Manifest round trip and tamper detection."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgekit.artifact import (
    Artifact,
    ConversionRecord,
    Manifest,
    ManifestSettings,
    ModelRecord,
    SettingRecord,
    SourceRecord,
    manifest_path,
    sha256_file,
)
from edgekit.errors import InputError


def _manifest(path: Path) -> Manifest:
    return Manifest(
        sha256=sha256_file(path),
        size_bytes=path.stat().st_size,
        format="litertlm",
        source=SourceRecord(kind="checkpoint_dir", path="/m", sha256="cd", files={"config.json": "ab"}),
        model=ModelRecord(model_type="gemma3_text", family="gemma3", parameter_count=100),
        settings=ManifestSettings(
            quant=SettingRecord(value="int4", source="default"),
            prefill_lengths=SettingRecord(value=(128,), source="caller"),
            cache_length=SettingRecord(value=1024, source="recipe:gemma3"),
        ),
        versions={"edgekit": "0.1.0", "torch": None},
        created="2026-01-01T00:00:00+00:00",
        conversion=ConversionRecord(wall_time_s=1.0, peak_rss_mb=100.0, stage_times_s={"export": 0.5}),
        notes=("a note",),
    )


def test_manifest_round_trips(tmp_path: Path) -> None:
    f = tmp_path / "m.litertlm"
    f.write_bytes(b"model bytes")
    m = _manifest(f)
    assert Manifest.from_json(m.to_json()) == m
    m.write(f)
    assert manifest_path(f) == tmp_path / "m.litertlm.json"
    loaded = Artifact.load(f)
    assert loaded.manifest == m
    assert loaded.verify() == m.sha256


def test_tampered_artifact_fails_verify(tmp_path: Path) -> None:
    f = tmp_path / "m.litertlm"
    f.write_bytes(b"model bytes")
    _manifest(f).write(f)
    f.write_bytes(b"model bytez")
    with pytest.raises(InputError, match="does not match its manifest"):
        Artifact.load(f).verify()


def test_artifact_without_manifest_has_unknown_provenance(tmp_path: Path) -> None:
    f = tmp_path / "published.litertlm"
    f.write_bytes(b"x" * 100)
    a = Artifact.load(f)
    assert a.manifest is None
    assert a.sha256 == sha256_file(f)


def test_newer_manifest_schema_is_refused() -> None:
    with pytest.raises(InputError, match="upgrade edgekit"):
        Manifest.from_json('{"schema_version": 99}')


def test_manifest_with_a_wrong_field_type_is_bad_input() -> None:
    data = json.loads(_manifest_text())
    data["conversion"]["stage_times_s"] = ["export"]
    with pytest.raises(
        InputError, match=r"manifest is not valid: Expected `object`, got `array` - at `\$\.conversion\.stage_times_s`"
    ):
        Manifest.from_json(json.dumps(data))


def _manifest_text() -> str:
    return (Path(__file__).parent / "fixtures" / "schema1" / "manifest.json").read_text()
