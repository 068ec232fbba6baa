"""Reading a GGUF file's header without llama.cpp: is it a model, and which one.

`cairn model use PATH` and `cairn model show` call this, so a wrong file (a safetensors
download, an HTML error page saved as .gguf, a half-copied file) is a one-line error before
anything tries to load it. Only the header is read: the magic, the version, the counts, and the
metadata keys, skipping arrays (the vocabulary) without keeping them.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from cairn.errors import BadInput

MAGIC = b"GGUF"
# value type → struct format of one item (8: string, 9: array are read specially)
_SCALAR = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q",
           11: "<q", 12: "<d"}
_MAX_KEY = 1 << 16
_MAX_STRING = 64 << 20
_MAX_KV = 1 << 20
KEEP = ("general.name", "general.architecture", "general.file_type", "general.size_label",
        "general.quantization_version", "tokenizer.ggml.model")


@dataclass
class GGUFInfo:
    path: Path
    size: int
    version: int
    tensors: int
    metadata: dict[str, Any] = field(default_factory=dict)
    has_chat_template: bool = False

    @property
    def name(self) -> str | None:
        v = self.metadata.get("general.name")
        return str(v) if v is not None else None

    @property
    def architecture(self) -> str | None:
        v = self.metadata.get("general.architecture")
        return str(v) if v is not None else None

    @property
    def context_length(self) -> int | None:
        arch = self.architecture
        v = self.metadata.get(f"{arch}.context_length") if arch else None
        return int(v) if isinstance(v, int) else None

    def to_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "bytes": self.size, "gguf_version": self.version,
                "tensors": self.tensors, "name": self.name, "architecture": self.architecture,
                "context_length": self.context_length, "chat_template": self.has_chat_template}


class _Reader:
    def __init__(self, fh: BinaryIO, size: int) -> None:
        self.fh = fh
        self.size = size

    def take(self, n: int) -> bytes:
        data = self.fh.read(n)
        if len(data) != n:
            raise BadInput("ends inside its header (a truncated download?)")
        return data

    def skip(self, n: int) -> None:
        if self.fh.tell() + n > self.size:
            raise BadInput("ends inside its header (a truncated download?)")
        self.fh.seek(n, 1)

    def unpack(self, fmt: str) -> Any:
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]

    def string(self, limit: int = _MAX_STRING, keep: bool = True) -> str | None:
        n = self.unpack("<Q")
        if n > limit:
            raise BadInput(f"has a {n}-byte string in its header (corrupt?)")
        if not keep:
            self.skip(n)
            return None
        return self.take(n).decode("utf-8", errors="replace")

    def value(self, vtype: int, keep: bool) -> Any:
        if vtype in _SCALAR:
            return self.unpack(_SCALAR[vtype])
        if vtype == 8:
            return self.string(keep=keep)
        if vtype == 9:
            itype = self.unpack("<I")
            count = self.unpack("<Q")
            if itype in _SCALAR:
                self.skip(count * struct.calcsize(_SCALAR[itype]))
            elif itype == 8:
                for _ in range(count):
                    self.string(keep=False)
            else:
                raise BadInput(f"has an array of unknown type {itype} (corrupt?)")
            return None
        raise BadInput(f"has a metadata value of unknown type {vtype} (corrupt?)")


def read_gguf(path: Path) -> GGUFInfo:
    """The header of the GGUF file at `path`; BadInput naming the file when it is not one."""
    path = Path(path).expanduser()
    try:
        if not path.is_file():
            raise BadInput(f"{path}: no such file" if not path.exists() else
                           f"{path}: not a regular file")
        size = path.stat().st_size
        with path.open("rb") as fh:
            r = _Reader(fh, size)
            try:
                if fh.read(4) != MAGIC:
                    raise BadInput("is not a GGUF model (no GGUF magic at the start)")
                version = r.unpack("<I")
                if version not in (2, 3):
                    raise BadInput(f"is GGUF version {version}; llama.cpp reads versions 2 and 3"
                                   " (convert the model again)")
                tensors = r.unpack("<Q")
                n_kv = r.unpack("<Q")
                if n_kv > _MAX_KV or tensors > 1 << 24:
                    raise BadInput("has an impossible header (corrupt?)")
                info = GGUFInfo(path=path, size=size, version=version, tensors=tensors)
                for _ in range(n_kv):
                    key = r.string(limit=_MAX_KEY) or ""
                    vtype = r.unpack("<I")
                    keep = key in KEEP or key.endswith(".context_length")
                    if key == "tokenizer.chat_template":
                        info.has_chat_template = True
                    value = r.value(vtype, keep)
                    if keep:
                        info.metadata[key] = value
            except BadInput as e:
                raise BadInput(f"{path} {e}") from None
    except OSError as e:
        raise BadInput(f"{path}: cannot read ({e.strerror or e})") from None
    if tensors == 0:
        raise BadInput(f"{path} is a GGUF file with no tensors (a vocabulary only?), not a model")
    return info
