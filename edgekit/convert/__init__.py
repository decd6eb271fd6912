"""PyTorch / Hugging Face → LiteRT conversion. Importing this module imports no torch."""

from edgekit.convert.checkpoint import Checkpoint, load_checkpoint
from edgekit.convert.config import ConvertConfig
from edgekit.convert.pipeline import ConvertResult, convert
from edgekit.convert.recipes import Format, Quant

__all__ = ["Checkpoint", "ConvertConfig", "ConvertResult", "Format", "Quant", "convert", "load_checkpoint"]
