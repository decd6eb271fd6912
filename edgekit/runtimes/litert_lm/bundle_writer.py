"""Small `.litertlm` files laid out as litert_lm_builder's litertlm_builder.py writes them, the
header packed with the builder's own generated flatbuffer schema (not edgekit's reader), so a
test that needs a bundle a runner would accept does not need a conversion."""

from __future__ import annotations

import struct
from pathlib import Path

TFLITE_MODEL = 3  # litertlm_header_schema: AnySectionDataType.TFLiteModel
BLOCK = 16 * 1024  # the builder aligns every section to 16 KiB


def write_bundle(path: Path, sections: list[tuple[int, bytes]], *, major: int = 1) -> Path:
    """Write `sections` (data type, bytes) as a .litertlm of format version major.7.0."""
    import flatbuffers  # type: ignore[import-untyped]
    from litert_lm_builder import litertlm_header_schema_py_generated as schema

    objects = []
    offset = BLOCK
    for data_type, data in sections:
        obj = schema.SectionObjectT()
        obj.items, obj.dataType, obj.beginOffset, obj.endOffset = [], data_type, offset, offset + len(data)
        objects.append(obj)
        offset = (offset + len(data) + BLOCK - 1) // BLOCK * BLOCK
    meta = schema.LiteRTLMMetaDataT()
    meta.systemMetadata = schema.SystemMetadataT()
    meta.systemMetadata.entries = []
    meta.sectionMetadata = schema.SectionMetadataT()
    meta.sectionMetadata.objects = objects
    builder = flatbuffers.Builder(BLOCK)
    builder.Finish(meta.Pack(builder))
    header = bytes(builder.Output())
    out = bytearray(b"LITERTLM" + struct.pack("<III", major, 7, 0) + b"\0" * 4)
    out += struct.pack("<Q", 32 + len(header)) + header
    for (_, data), obj in zip(sections, objects, strict=True):
        out += b"\0" * (obj.beginOffset - len(out)) + data
    path.write_bytes(bytes(out))
    return path
