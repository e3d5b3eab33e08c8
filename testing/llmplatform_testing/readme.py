"""The commands of README.md's "Quickstart on a real cluster", read from the README itself.

Why here: the quickstart test runs them on the real-node bed, the README-vs-chart test renders
its `helm install` with `helm template`, and the Argo CD/apply test runs its `kubectl apply`
on the kwok bed; reading the text in one place means a README edit is what every one of them
checks, so the README and the tests cannot drift apart.
"""

from __future__ import annotations

import re
import shlex

from llmplatform_testing import ROOT

SECTION = "## Quickstart on a real cluster"


def quickstart_commands() -> list[str]:
    """The commands of the first ```sh block of the quickstart section (continuations joined)."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index(SECTION) :]
    section = section[: section.find("\n## ", 3)]
    m = re.search(r"```sh\n(.*?)```", section, re.S)
    assert m, "no ```sh block in the README's quickstart section"
    commands, current = [], ""
    for line in m.group(1).splitlines():
        current += line
        if current.rstrip().endswith("\\"):
            current = current.rstrip()[:-1] + " "
            continue
        if current.strip():
            commands.append(current.strip())
        current = ""
    return commands


def quickstart_command(prefix: str) -> list[str]:
    """The one quickstart command starting with `prefix`, as arguments (comments dropped), with
    the words after `prefix` that name a path in the repository made absolute."""
    (found,) = [c for c in quickstart_commands() if c.startswith(prefix + " ")]
    words = shlex.split(found, comments=True)
    head = len(shlex.split(prefix))
    return words[:head] + [str(ROOT / w) if "/" in w and (ROOT / w).exists() else w for w in words[head:]]
