"""docs/configuration.md is generated from the models and cannot drift from them."""

from __future__ import annotations

import re
from pathlib import Path

from opsplane.config.loader import loads
from opsplane.config.schema import REGENERATE, render_markdown

PAGE = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_configuration_reference_is_the_generator_output() -> None:
    written = PAGE.read_text() if PAGE.exists() else ""

    assert written == render_markdown(), (
        "docs/configuration.md differs from what opsplane/config/schema.py generates; "
        f"regenerate it with:\n    {REGENERATE}"
    )


def test_every_field_of_the_reference_is_described() -> None:
    rows = [line for line in render_markdown().splitlines() if line.startswith("| `")]

    undescribed = [row.split("|")[1].strip() for row in rows if row.rstrip().endswith("|  |")]
    assert rows
    assert undescribed == [], "describe these fields in models.py (or schema._FIELD_NOTES)"


def test_the_example_of_the_reference_is_a_valid_inventory() -> None:
    example = render_markdown().split("## Example", 1)[1]
    (yaml_text,) = re.findall(r"```yaml\n(.*?)```", example, flags=re.DOTALL)

    inventory = loads(yaml_text, "docs/configuration.md")

    assert list(inventory.environments) == ["production", "staging", "development"]
