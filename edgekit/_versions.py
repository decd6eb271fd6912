"""Versions of edgekit and the parts it drives, read from package metadata (no imports)."""

from __future__ import annotations

from importlib import metadata

__version__ = "0.1.0"

# Distributions whose versions matter for reproducing a result, in the order shown.
KEY_DISTRIBUTIONS = (
    "litert-torch",
    "litert-lm-api",
    "litert-lm-builder",
    "ai-edge-litert",
    "ai-edge-quantizer",
    "torch",
    "transformers",
    "tensorflow-cpu",
    "gguf",
    "gensim",
    "adbutils",
    "adb-shell",
)


def distribution_version(name: str) -> str | None:
    """The installed version of distribution `name`, or None when it is not installed."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def versions() -> dict[str, str | None]:
    """edgekit's version and each key dependency's (None = not installed)."""
    return {"edgekit": __version__, **{name: distribution_version(name) for name in KEY_DISTRIBUTIONS}}
