"""Served model families: one module per family, one safetensors file per model.

``FAMILIES`` maps the family a file's metadata names ("concat-fusion",
"hi-moe", "mco-e-net") to how to rebuild and serve it
(``models.serving.base.Family``). ``models.runtime`` loads files through it.
"""

from __future__ import annotations

from models.serving import concat_fusion, hi_moe, mco_e_net
from models.serving.base import Family

FAMILIES: dict[str, Family] = {
    f.name: f for f in (concat_fusion.FAMILY, hi_moe.FAMILY, mco_e_net.FAMILY)
}

#: files written before the metadata named a family say only their architecture
FAMILY_OF_ARCHITECTURE: dict[str, str] = {f.architecture: f.name for f in FAMILIES.values()}
