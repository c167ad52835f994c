"""docs/architecture.md names every state migration of sql/state (the list a new module reads to pick its number)."""
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_every_state_migration_is_listed():
    text = (REPO / "docs" / "architecture.md").read_text()
    listed = re.search(r"numbered files in `sql/state/` \(([^)]*)\)", text)
    assert listed, "architecture.md lost its list of state migrations"
    numbers = set(re.findall(r"\b(\d{3})\b", listed.group(1)))
    files = {p.name[:3] for p in (REPO / "sql" / "state").glob("*.sql")}
    assert files <= numbers, f"not listed in docs/architecture.md: {sorted(files - numbers)}"
