"""Parse WordNet 3.0 data files (Debian wordnet-base) into gloss texts and example-sentence
queries."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

WORDNET_DIR = Path("/usr/share/wordnet")
POS_FILES = ("data.noun", "data.verb", "data.adj", "data.adv")
_QUOTED = re.compile(r'"([^"]*)"')
_ADJ_MARKER = re.compile(r"\((a|p|ip)\)$")


@dataclass(frozen=True)
class Synset:
    """One synset: its lemmas, its definition (examples removed) and its quoted examples."""

    key: str
    lemmas: tuple[str, ...]
    definition: str
    examples: tuple[str, ...]

    @property
    def text(self) -> str:
        """The document text: "lemma, lemma: definition"."""
        return f"{', '.join(self.lemmas)}: {self.definition}"


def _lemmas(fields: list[str]) -> tuple[str, ...]:
    count = int(fields[3], 16)
    words = fields[4 : 4 + 2 * count : 2]
    return tuple(_ADJ_MARKER.sub("", w).replace("_", " ") for w in words)


def _split_gloss(gloss: str) -> tuple[str, tuple[str, ...]]:
    examples = tuple(e.strip() for e in _QUOTED.findall(gloss) if e.strip())
    definition = _QUOTED.sub("", gloss)
    definition = re.sub(r"(\s*;\s*)+", "; ", definition).strip(" ;")
    return definition, examples


def parse_line(line: str, pos_file: str) -> Synset | None:
    """One data-file line to a Synset; None for the licence header."""
    if line.startswith("  ") or "|" not in line:
        return None
    head, gloss = line.split("|", 1)
    fields = head.split()
    definition, examples = _split_gloss(gloss.strip())
    return Synset(f"{pos_file[5:]}:{fields[0]}", _lemmas(fields), definition, examples)


def read_synsets(wordnet_dir: Path = WORDNET_DIR) -> list[Synset]:
    """All synsets of the four data files, in file order."""
    out: list[Synset] = []
    for name in POS_FILES:
        with open(wordnet_dir / name, encoding="utf-8", errors="replace") as f:
            for line in f:
                synset = parse_line(line, name)
                if synset is not None:
                    out.append(synset)
    return out
