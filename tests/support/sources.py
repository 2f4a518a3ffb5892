"""Source texts the tests edit and complete in."""

from __future__ import annotations

import random

from tests.support.paths import REPO

# A Python file cut off inside `print(`: a mid-statement completion (one line) is due at END.
SOURCE = """import os


def list_files(folder):
    names = []
    for name in os.listdir(folder):
        names.append(os.path.join(folder, name))
    return names


def main():
    files = list_files(os.getcwd())
    for f in files:
        print(
"""
END = (len(SOURCE.splitlines()) - 1, len(SOURCE.splitlines()[-1]))  # after "print("

# The same with a documented function first: editor tests hover and complete in it.
EDITOR_SOURCE = SOURCE.replace(
    "import os\n\n\n",
    '''import os


def read_config(path):
    """Read a config file."""
    with open(path) as handle:
        return handle.read()


''',
    1,
)

# What the editor tests (Neovim, VS Code's protocol) type into: the cursor goes after the end.
READ_LINES_SOURCE = """import os


def read_lines(path):
    with open(path) as handle:
        return handle.read().splitlines()


def count_lines(path):
    lines = read_lines(path)
"""


def real_code_cases(limit: int, *, seed: int = 0, min_prefix_chars: int = 200):
    """Cursor positions in real code the labmodel did not see (this repository's own source):
    (prefix, rest_of_line, text_after_line) at mid-line positions and line starts."""
    rng = random.Random(seed)
    files = sorted(p for d in ("server", "inference") for p in (REPO / d).glob("*.py"))
    cases = []
    for path in files:
        text = path.read_text()
        lines = text.splitlines(keepends=True)
        offset = 0
        starts = []
        for line in lines:
            starts.append(offset)
            offset += len(line)
        for i, line in enumerate(lines):
            body = line.rstrip("\n")
            if len(body.strip()) < 12 or starts[i] < min_prefix_chars:
                continue
            indent = len(body) - len(body.lstrip())
            col = rng.randint(indent + 1, len(body) - 2)
            pos = starts[i] + col
            cases.append((text[:pos], body[col:], text[starts[i] + len(line) :]))
    rng.shuffle(cases)
    return cases[:limit]


# A cursor inside `conf` that only a local name of another function, 150 lines up, completes:
# no signature, attribute or import holds it, and no window of a small budget reaches it.
WORD_AT_CURSOR_SOURCE = (
    """def prepare(source):
    confirmation_token = source.read()
    return confirmation_token


def helper():
"""
    + "".join(f"    filler_{i} = {i}\n" for i in range(150))
    + """    return filler_149


def finish(source):
    outcome = source.get()
    return conf"""
)
