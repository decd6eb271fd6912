"""The conversion cache: unchanged input with unchanged settings returns the existing file at once.

cache_key(ckpt, plan, verify_on) -> str     hash of the source files, the settings and the converting tools
cache_hit(out, key) -> Artifact | None      the file already at `out`, if its manifest has that key and it is intact
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from edgekit._typed import to_data
from edgekit._versions import CONVERT_DISTRIBUTIONS, versions
from edgekit.artifact import Artifact, manifest_path
from edgekit.convert import vocab
from edgekit.convert.checkpoint import Checkpoint
from edgekit.convert.plan import ConvertPlan
from edgekit.errors import EdgekitError

# What cache_key hashes, versioned: bump it when a field changes meaning or goes, so a key
# made before misses the cache. 2: the device transports' versions (adbutils, adb-shell) left
# the key (1 had them, and no "format" field).
CACHE_KEY_FORMAT = 2


def cache_key(ckpt: Checkpoint, plan: ConvertPlan, verify_on: bool) -> str:
    """Hash of the source files, the resolved settings and the versions of the tools that convert.

    The device transports' versions are not in it: an adb library upgrade changes no artifact.
    """
    payload = {
        "format": CACHE_KEY_FORMAT,
        "files": ckpt.files,
        "settings": to_data(plan.settings()),
        "verify": verify_on,
        "versions": versions(CONVERT_DISTRIBUTIONS),
        # int4 splits a Gemma 3 table (split_table) since this key field appeared: an int4
        # artifact made before, with the whole table at 4 bits, must not be a cache hit.
        "table_split": plan.quant.value.splits_table,
    }
    if (ckpt.path / vocab.MARKER).is_file():
        # A trimmed vocabulary's 8-bit half was half its ids before this key field appeared
        # (split_table.split_rows): such an artifact must not be a cache hit.
        payload["trimmed_split"] = "the text's ids first, at 8 bits"
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def cache_hit(out: Path, key: str) -> Artifact | None:
    """The artifact at `out` when its manifest carries `key` and the file still matches it; else None."""
    if not out.is_file() or not manifest_path(out).is_file():
        return None
    try:
        artifact = Artifact.load(out)
        if artifact.manifest is None or artifact.manifest.cache_key != key:
            return None
        artifact.verify()
    except EdgekitError:
        return None
    return artifact
