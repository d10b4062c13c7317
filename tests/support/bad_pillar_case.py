"""One case of the bad-pillar corpus: a broken variant of the lab pillar and the exact
problem kubesalt must report."""

import copy
from dataclasses import dataclass

from kubesalt_lab.pillar import lab_pillar


@dataclass(frozen=True)
class BadPillar:
    id: str
    mutate: object  # callable(pillar dict) -> None, or -> a replacement value
    expected: str  # the exact problem text: "<key>: <message>"
    level: str = "error"

    def pillar(self):
        pillar = copy.deepcopy(lab_pillar())
        replaced = self.mutate(pillar)
        return pillar if replaced is None else replaced


def set_key(path, value):
    """A mutation that sets ``a:b:c`` to ``value``."""

    def mutate(pillar):
        *parents, last = path.split(":")
        target = pillar
        for part in parents:
            target = target.setdefault(part, {})
        target[last] = value

    return mutate
