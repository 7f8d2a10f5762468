"""The codebook as data: actors, stance values and frames, loaded from YAML and validated.

Nothing about the default labels lives in Python; a researcher's own codebook is another YAML
file with the same shape (see ``seeds/codebook.yaml``).
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .errors import StanceError
from .normalize import NORMALIZATIONS, normalize

_ID = re.compile(r"^[a-z][a-z0-9_]*$")
PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CODEBOOK = PROJECT_ROOT / "seeds" / "codebook.yaml"


class CodebookError(StanceError):
    """A codebook file that cannot be used; the message names the file and the problem."""


@dataclass(frozen=True)
class Actor:
    id: str
    name: str
    description: str = ""
    aliases: tuple[str, ...] = ()

    @property
    def query_text(self) -> str:
        """The text the model encodes to describe this actor to the stance head."""
        return f"{self.name}. {self.description}".strip()


@dataclass(frozen=True)
class Frame:
    id: str
    name: str
    definition: str = ""
    signals: tuple[str, ...] = ()
    not_: tuple[str, ...] = ()


    @property
    def query_text(self) -> str:
        """The text the model encodes to describe this frame to the frame head."""
        return " ".join([f"{self.name}.", self.definition, *self.signals]).strip()


@dataclass(frozen=True)
class StanceValue:
    id: str
    definition: str = ""


@dataclass(frozen=True)
class Codebook:
    name: str
    version: str
    actors: tuple[Actor, ...]
    stance_values: tuple[StanceValue, ...]
    frames: tuple[Frame, ...]
    absent_value: str | None = None
    unit: str = ""
    # "complete": every record gives a value for every actor. "partial": a record may leave an
    # actor out (not annotated, as in datasets that label one target per text); training and
    # scoring then skip that actor for that record.
    annotation: str = "complete"
    text_normalization: str = "none"  # see stance.normalize; applied in training and labelling
    source: str = field(default="<memory>", compare=False)

    # -- lookups ---------------------------------------------------------------------------
    @property
    def actor_ids(self) -> list[str]:
        return [a.id for a in self.actors]

    @property
    def frame_ids(self) -> list[str]:
        return [f.id for f in self.frames]

    @property
    def value_ids(self) -> list[str]:
        return [v.id for v in self.stance_values]

    @property
    def present_values(self) -> list[str]:
        """The stance values that mean the actor is referred to (all but the absent value)."""
        return [v for v in self.value_ids if v != self.absent_value]

    @property
    def polar_values(self) -> list[str]:
        """favor/against, the two values SemEval's F_avg averages, when the codebook has them."""
        return [v for v in ("favor", "against") if v in self.value_ids]

    @property
    def partial(self) -> bool:
        return self.annotation == "partial"

    def normalize(self, text: str) -> str:
        """The text as the model reads it (the codebook's ``text_normalization``)."""
        return normalize(text, self.text_normalization)

    def actor(self, actor_id: str) -> Actor:
        for a in self.actors:
            if a.id == actor_id:
                return a
        raise CodebookError(
            f"unknown actor {actor_id!r}; the codebook {self.name!r} has: {', '.join(self.actor_ids)}"
        )

    def check_actors(self, actor_ids) -> list[str]:
        """Validate a user's choice of actors (e.g. ``--actors``) and return it as a list."""
        return [self.actor(a).id for a in actor_ids]

    def check_frames(self, frame_ids) -> list[str]:
        out = []
        for f in frame_ids:
            if f not in self.frame_ids:
                raise CodebookError(
                    f"unknown frame {f!r}; the codebook {self.name!r} has: {', '.join(self.frame_ids)}"
                )
            out.append(f)
        return out

    # -- (de)serialisation ------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "version": self.version,
            "unit": self.unit,
            "stance_values": [{"id": v.id, "definition": v.definition} for v in self.stance_values],
            "absent_value": self.absent_value,
            "annotation": self.annotation,
            "text_normalization": self.text_normalization,
            "actors": [
                {"id": a.id, "name": a.name, "description": a.description, "aliases": list(a.aliases)}
                for a in self.actors
            ],
            "frames": [
                {
                    "id": f.id,
                    "name": f.name,
                    "definition": f.definition,
                    "signals": list(f.signals),
                    "not": list(f.not_),
                }
                for f in self.frames
            ],
        }

    def save(self, path: str | Path) -> None:
        Path(path).write_text(
            yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True, width=100),
            encoding="utf-8",
        )

    def fingerprint(self) -> str:
        """A hash of what the model depends on: ids and order of actors, values and frames."""
        parts = [self.actor_ids, self.value_ids, self.frame_ids, self.absent_value]
        if self.text_normalization != "none":  # the model reads normalised text
            parts.append(self.text_normalization)
        key = json.dumps(parts)
        return hashlib.sha256(key.encode()).hexdigest()[:16]

    @classmethod
    def from_dict(cls, data: dict, source: str = "<memory>") -> "Codebook":
        return _parse(data, source)

    @classmethod
    def load(cls, path: str | Path | None = None) -> "Codebook":
        path = Path(path) if path is not None else DEFAULT_CODEBOOK
        if not path.exists():
            raise CodebookError(f"{path}: codebook file not found")
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as e:
            raise CodebookError(f"{path}: not a readable YAML file: {e}") from None
        return _parse(data, str(path))


def _items(data: dict, key: str, source: str) -> list:
    items = data.get(key)
    if not isinstance(items, list) or not items:
        raise CodebookError(f"{source}: {key!r} must be a non-empty list")
    return items


def _check_id(value, what: str, source: str, seen: set) -> str:
    if not isinstance(value, str) or not _ID.match(value):
        raise CodebookError(
            f"{source}: {what} id {value!r} must be lower-case letters, digits and underscores"
        )
    if value in seen:
        raise CodebookError(f"{source}: {what} id {value!r} appears twice")
    seen.add(value)
    return value


def _strings(value, what: str, source: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise CodebookError(f"{source}: {what} must be a list of strings")
    return tuple(value)


def _parse(data, source: str) -> Codebook:
    if not isinstance(data, dict):
        raise CodebookError(f"{source}: a codebook must be a YAML mapping")
    values, seen = [], set()
    for item in _items(data, "stance_values", source):
        item = {"id": item} if isinstance(item, str) else item
        if not isinstance(item, dict):
            raise CodebookError(f"{source}: each stance value must be an id or a mapping with 'id'")
        values.append(StanceValue(_check_id(item.get("id"), "stance value", source, seen),
                                  str(item.get("definition", ""))))
    if len(values) < 2:
        raise CodebookError(f"{source}: a codebook needs at least two stance values")
    absent = data.get("absent_value")
    if absent is not None and absent not in seen:
        raise CodebookError(
            f"{source}: absent_value {absent!r} is not one of the stance values {sorted(seen)}"
        )
    annotation = data.get("annotation", "complete")
    if annotation not in ("complete", "partial"):
        raise CodebookError(f"{source}: annotation must be 'complete' or 'partial', not {annotation!r}")
    how = data.get("text_normalization", "none")
    if how not in NORMALIZATIONS:
        raise CodebookError(f"{source}: text_normalization must be one of {', '.join(NORMALIZATIONS)}, "
                            f"not {how!r}")
    actors, seen = [], set()
    for item in _items(data, "actors", source):
        if not isinstance(item, dict):
            raise CodebookError(f"{source}: each actor must be a mapping with 'id'")
        aid = _check_id(item.get("id"), "actor", source, seen)
        aliases = _strings(item.get("aliases"), f"aliases of actor {aid!r}", source)
        actors.append(Actor(aid, str(item.get("name") or aid), str(item.get("description", "")).strip(),
                            aliases))
    frames, seen = [], set()
    for item in data.get("frames") or []:
        if not isinstance(item, dict):
            raise CodebookError(f"{source}: each frame must be a mapping with 'id'")
        fid = _check_id(item.get("id"), "frame", source, seen)
        frames.append(Frame(fid, str(item.get("name") or fid), str(item.get("definition", "")).strip(),
                            _strings(item.get("signals"), f"signals of frame {fid!r}", source),
                            _strings(item.get("not"), f"'not' of frame {fid!r}", source)))
    return Codebook(
        name=str(data.get("name", "codebook")),
        version=str(data.get("version", "")),
        actors=tuple(actors),
        stance_values=tuple(values),
        frames=tuple(frames),
        absent_value=absent,
        unit=str(data.get("unit", "")),
        annotation=annotation,
        text_normalization=how,
        source=source,
    )
