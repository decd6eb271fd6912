"""edgekit: take a small language model from PyTorch to a phone, and measure it there.

Importing edgekit does nothing but define names: no torch, no device connection.
"""

from edgekit._versions import __version__
from edgekit.artifact import Artifact, Manifest
from edgekit.convert import ConvertConfig, ConvertResult, Format, Quant, convert
from edgekit.engine import PromptRun, run_prompt
from edgekit.errors import (
    ConversionError,
    DependencyError,
    DeviceError,
    EdgekitError,
    FidelityError,
    InputError,
)

__all__ = [
    "Artifact",
    "ConversionError",
    "ConvertConfig",
    "ConvertResult",
    "DependencyError",
    "DeviceError",
    "EdgekitError",
    "FidelityError",
    "Format",
    "InputError",
    "Manifest",
    "PromptRun",
    "Quant",
    "__version__",
    "convert",
    "run_prompt",
]
