"""edgekit: take a small language model from PyTorch to a phone, and measure it there.

Importing edgekit does nothing but define names: no torch, no device connection, and no
transport library (adbutils, adb-shell, pty): `AdbDevice` and `DirectAdbDevice` are
imported on first access.
"""

from typing import TYPE_CHECKING

from edgekit._versions import __version__
from edgekit.artifact import Artifact, Manifest, NllGap
from edgekit.bench import BenchConfig, BenchResult, battery_bench
from edgekit.convert import ConvertConfig, ConvertResult, Format, Quant, convert
from edgekit.convert.evaluate import EvalResult, evaluate
from edgekit.deploy import DeployConfig, DeployResult, deploy
from edgekit.device import Device, DeviceFacts, Transport, open_device
from edgekit.device.local import LocalDevice
from edgekit.engine import PromptRun, run_prompt
from edgekit.errors import (
    ConversionError,
    DependencyError,
    DeviceError,
    EdgekitError,
    FidelityError,
    InputError,
)

if TYPE_CHECKING:
    from edgekit.device.adb import AdbDevice
    from edgekit.device.direct import DirectAdbDevice

__all__ = [
    "AdbDevice",
    "Artifact",
    "BenchConfig",
    "BenchResult",
    "ConversionError",
    "ConvertConfig",
    "ConvertResult",
    "DependencyError",
    "DeployConfig",
    "DeployResult",
    "Device",
    "DeviceError",
    "DeviceFacts",
    "DirectAdbDevice",
    "EdgekitError",
    "EvalResult",
    "FidelityError",
    "Format",
    "InputError",
    "LocalDevice",
    "Manifest",
    "NllGap",
    "PromptRun",
    "Quant",
    "Transport",
    "__version__",
    "battery_bench",
    "convert",
    "deploy",
    "evaluate",
    "open_device",
    "run_prompt",
]


def __getattr__(name: str) -> object:
    """The transports, imported when first used (PEP 562)."""
    if name == "AdbDevice":
        from edgekit.device.adb import AdbDevice

        return AdbDevice
    if name == "DirectAdbDevice":
        from edgekit.device.direct import DirectAdbDevice

        return DirectAdbDevice
    raise AttributeError(f"module 'edgekit' has no attribute {name!r}")
