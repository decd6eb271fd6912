"""A converted model file and the manifest that travels beside it (`<artifact>.json`).

The manifest records what the file is (sha256, size, format), where it came from (the
per-file sha256 of the source checkpoint), how it was made (every setting with where its
value came from, tool versions) and how well it agrees with the PyTorch reference.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from edgekit.errors import InputError

MANIFEST_SCHEMA_VERSION = 1


def sha256_file(path: Path) -> str:
    """Hex sha256 of the file at `path`."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def manifest_path(artifact_path: Path) -> Path:
    """Where the manifest of `artifact_path` lives: the same name plus `.json`."""
    return artifact_path.with_name(artifact_path.name + ".json")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Manifest:
    """Provenance and fidelity record of one artifact. See docs/manifest.md for every key."""

    sha256: str
    size_bytes: int
    format: str
    source: dict[str, Any]
    model: dict[str, Any]
    settings: dict[str, dict[str, Any]]
    versions: dict[str, str | None]
    created: str
    conversion: dict[str, Any]
    fidelity: dict[str, Any] | None = None
    quantization: dict[str, Any] | None = None
    cache_key: str | None = None
    notes: tuple[str, ...] = ()
    schema_version: int = MANIFEST_SCHEMA_VERSION

    def to_json(self) -> str:
        """The manifest as indented JSON text."""
        data = dataclasses.asdict(self)
        data["notes"] = list(self.notes)
        return json.dumps(data, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        """Parse manifest JSON; raises InputError for anything that is not one."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"manifest is not valid JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise InputError("manifest is not a JSON object")
        version = data.get("schema_version")
        if not isinstance(version, int) or version > MANIFEST_SCHEMA_VERSION:
            raise InputError(
                f"manifest schema_version {version!r} is not one this edgekit reads "
                f"(<= {MANIFEST_SCHEMA_VERSION}): upgrade edgekit"
            )
        known = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known}
        kwargs["notes"] = tuple(kwargs.get("notes", ()))
        try:
            return cls(**kwargs)
        except TypeError as exc:
            raise InputError(f"manifest is missing fields: {exc}") from exc

    def write(self, artifact_path: Path) -> Path:
        """Write the manifest beside `artifact_path` atomically; returns its path."""
        path = manifest_path(artifact_path)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(self.to_json())
        os.replace(tmp, path)
        return path


@dataclasses.dataclass(frozen=True)
class Artifact:
    """A model file (`.litertlm` or `.tflite`) and its manifest, if it has one."""

    path: Path
    manifest: Manifest | None

    @property
    def sha256(self) -> str:
        """The sha256 the manifest records; computes it from the file when there is no manifest."""
        if self.manifest is not None:
            return self.manifest.sha256
        return sha256_file(self.path)

    @classmethod
    def load(cls, path: Path | str) -> Artifact:
        """Open an artifact and its manifest (absent manifest = provenance unknown)."""
        path = Path(path)
        if not path.is_file():
            raise InputError(f"artifact {path} does not exist or is not a file", path=path)
        mpath = manifest_path(path)
        manifest = Manifest.from_json(mpath.read_text()) if mpath.is_file() else None
        return cls(path=path, manifest=manifest)

    def verify(self) -> str:
        """Check the file against its manifest's sha256 and size; returns the sha256."""
        actual = sha256_file(self.path)
        if self.manifest is None:
            return actual
        if self.path.stat().st_size != self.manifest.size_bytes or actual != self.manifest.sha256:
            raise InputError(
                f"{self.path} does not match its manifest (sha256 {actual[:12]}…, manifest says "
                f"{self.manifest.sha256[:12]}…): the file was changed or truncated; re-convert it",
                path=self.path,
            )
        return actual
