"""The README's Quickstart has exactly two commands, and CI runs the second one verbatim."""
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _quickstart_commands():
    text = (REPO / "README.md").read_text()
    section = text.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    return [b.strip() for b in re.findall(r"```bash\n(.*?)```", section, flags=re.S)]


def test_quickstart_has_two_commands():
    cmds = _quickstart_commands()
    assert len(cmds) == 2, cmds
    assert all("\n" not in c for c in cmds), "each Quickstart command is one line"
    assert "monitor demo" in cmds[0] and "pip install" in cmds[0]
    assert "pytest" in cmds[1]


def test_ci_runs_the_readme_test_command():
    test_cmd = _quickstart_commands()[1]
    # CI activates its own fresh venv first; the rest of the line must be identical.
    tail = test_cmd.split("&&", 1)[1].strip()
    ci = (REPO / ".ci" / "run").read_text()
    assert tail in ci, f"{tail!r} not found in .ci/run"


def test_docs_linked_from_readme_exist():
    text = (REPO / "README.md").read_text()
    for link in re.findall(r"\]\((docs/[^)]+)\)", text):
        assert (REPO / link).exists(), f"README links to missing {link}"
