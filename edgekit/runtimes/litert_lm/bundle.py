"""The `.litertlm` header, read as LiteRT-LM's runtime reads it, to refuse a file no runner loads.

The format (google-ai-edge/LiteRT-LM, schema/core/litertlm_read.cc ReadHeaderFromLiteRTLM
at 9c176ada, schema/core/litertlm_header_schema.fbs at 2f4884ba; the same constants in
litert_lm_builder/litertlm_core.py 0.18.1, which writes it in litertlm_builder.py; the
section types as in its litertlm_header_schema_py_generated.py):

    0   8 bytes  magic "LITERTLM"
    8   3 × u32  major, minor, patch (little-endian); the reader refuses a major other than 1
    20  4 bytes  padding
    24  u64      header end offset
    32  ...      a flatbuffer LiteRTLMMetaData up to the header end: system_metadata (field 0),
                 section_metadata (field 1) = SectionMetadata{objects: [SectionObject]},
                 SectionObject{items (0), begin_offset: u64 (1), end_offset: u64 (2), data_type: u8 (3)}

Each section's bytes are [begin_offset, end_offset) of the file. Pure: reads bytes, no engine.
"""

from __future__ import annotations

import dataclasses
import struct
from pathlib import Path

from edgekit.errors import InputError

MAGIC = b"LITERTLM"
MAJOR_VERSION = 1
HEADER_BEGIN = 32
HEADER_END_LOCATION = 24
TFLITE_MODEL = 3
"""AnySectionDataType.TFLiteModel: the bundle's model; a runner cannot load a bundle without one."""
SECTION_TYPES = {
    0: "NONE",
    1: "GenericBinaryData",
    2: "Deprecated",
    3: "TFLiteModel",
    4: "SP_Tokenizer",
    5: "LlmMetadataProto",
    6: "HF_Tokenizer_Zlib",
    7: "TFLiteWeights",
    8: "EmbeddingMetadataProto",
    9: "ExecutorMetadataProto",
    10: "TtsMetadataProto",
    11: "AsrMetadataProto",
}
_MAX_HEADER = 64 * 1024 * 1024


@dataclasses.dataclass(frozen=True, kw_only=True)
class Section:
    """One section: its data type (SECTION_TYPES) and byte range in the file."""

    data_type: int
    begin: int
    end: int


@dataclasses.dataclass(frozen=True, kw_only=True)
class BundleHeader:
    """What the header of a `.litertlm` says: the format version and the sections."""

    version: tuple[int, int, int]
    sections: tuple[Section, ...]


class _Corrupt(Exception):
    pass


class _Flatbuffer:
    """Just enough of the flatbuffers wire format (tables, vectors) to read SectionObjects, bounds-checked."""

    def __init__(self, buf: bytes) -> None:
        self.buf = buf

    def _u(self, fmt: str, pos: int) -> int:
        size = struct.calcsize(fmt)
        if pos < 0 or pos + size > len(self.buf):
            raise _Corrupt(f"offset {pos} is outside the header")
        value: int = struct.unpack_from(fmt, self.buf, pos)[0]
        return value

    def root(self) -> int:
        return self._u("<I", 0)

    def field(self, table: int, index: int) -> int | None:
        """Where field `index` of the table at `table` is, None when absent."""
        vtable = table - self._u("<i", table)
        vt_size = self._u("<H", vtable)
        slot = 4 + 2 * index
        if slot + 2 > vt_size:
            return None
        off = self._u("<H", vtable + slot)
        return table + off if off else None

    def table(self, table: int, index: int) -> int | None:
        pos = self.field(table, index)
        return None if pos is None else pos + self._u("<I", pos)

    def vector_of_tables(self, table: int, index: int) -> list[int]:
        pos = self.field(table, index)
        if pos is None:
            return []
        vec = pos + self._u("<I", pos)
        n = self._u("<I", vec)
        if n > len(self.buf) // 4:
            raise _Corrupt(f"a vector of {n} entries cannot fit")
        return [vec + 4 + 4 * i + self._u("<I", vec + 4 + 4 * i) for i in range(n)]

    def scalar(self, table: int, index: int, fmt: str) -> int:
        pos = self.field(table, index)
        return 0 if pos is None else self._u(fmt, pos)


def read_header(path: Path) -> BundleHeader:
    """The header of the `.litertlm` at `path`; InputError (naming what is wrong) when a
    LiteRT-LM runner would not load it: too short, no magic, another major version, a
    header or a section outside the file, no TFLite model section."""

    def bad(why: str) -> InputError:
        return InputError(
            f"{path} is not a LiteRT-LM bundle the runner can load: {why}; convert the model with "
            "`edgekit convert` (or use a published .litertlm)",
            path=path,
        )

    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(HEADER_BEGIN)
            if head and head[:8] != MAGIC[: len(head)]:
                raise bad(f"it does not start with {MAGIC.decode()!r} (it starts with {head[:8]!r})")
            if len(head) < HEADER_BEGIN:
                raise bad(f"{size} bytes, shorter than the {HEADER_BEGIN}-byte header")
            major, minor, patch = struct.unpack_from("<III", head, 8)
            if major != MAJOR_VERSION:
                raise bad(f"format version {major}.{minor}.{patch}; LiteRT-LM reads major version {MAJOR_VERSION}")
            (end,) = struct.unpack_from("<Q", head, HEADER_END_LOCATION)
            if not HEADER_BEGIN < end <= min(size, HEADER_BEGIN + _MAX_HEADER):
                raise bad(f"its header ends at byte {end}, outside the file's {size} bytes")
            buf = f.read(end - HEADER_BEGIN)
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}", path=path) from exc
    fb = _Flatbuffer(buf)
    try:
        root = fb.root()
        meta = fb.table(root, 1)
        objects = [] if meta is None else fb.vector_of_tables(meta, 0)
        sections = tuple(
            Section(
                data_type=fb.scalar(o, 3, "<B"),
                begin=fb.scalar(o, 1, "<Q"),
                end=fb.scalar(o, 2, "<Q"),
            )
            for o in objects
        )
    except _Corrupt as exc:
        raise bad(f"its header is corrupt ({exc})") from None
    for i, s in enumerate(sections):
        if not end <= s.begin < s.end <= size:
            kind = SECTION_TYPES.get(s.data_type, str(s.data_type))
            raise bad(f"section {i} ({kind}) spans bytes {s.begin}-{s.end}, outside the file's {size} (truncated?)")
    if not any(s.data_type == TFLITE_MODEL for s in sections):
        raise bad(f"it has no TFLiteModel section ({len(sections)} sections)")
    return BundleHeader(version=(major, minor, patch), sections=sections)
