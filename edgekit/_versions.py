"""Versions of edgekit and the parts it drives, read from package metadata (no imports)."""

from __future__ import annotations

from importlib import metadata

__version__ = "0.1.0"

# Distributions that shape a converted artifact (its bytes, its manifest's fidelity report):
# the conversion cache key holds their versions.
CONVERT_DISTRIBUTIONS = (
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
)
# Distributions that only talk to a device: upgrading one changes no artifact.
DEVICE_DISTRIBUTIONS = ("adbutils", "adb-shell")
# Distributions whose versions matter for reproducing a result, in the order shown.
KEY_DISTRIBUTIONS = CONVERT_DISTRIBUTIONS + DEVICE_DISTRIBUTIONS


def distribution_version(name: str) -> str | None:
    """The installed version of distribution `name`, or None when it is not installed."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def versions(distributions: tuple[str, ...] = KEY_DISTRIBUTIONS) -> dict[str, str | None]:
    """edgekit's version and each of `distributions`' (None = not installed)."""
    return {"edgekit": __version__, **{name: distribution_version(name) for name in distributions}}
