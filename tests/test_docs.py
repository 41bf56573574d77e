"""The README documents what the code has: every endpoint and every mock setting."""

from __future__ import annotations

from pathlib import Path

from authload.contracts import ENDPOINTS
from authload.mock.settings import MockSettings

README = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")


def test_readme_starts_with_the_two_commands() -> None:
    first = README.split("```sh\n", 1)[1].split("```", 1)[0].splitlines()
    assert first[0].startswith("./run authload run scenarios/smoke.yaml")
    assert first[1].startswith("./run pytest")


def test_every_endpoint_is_documented_with_its_path() -> None:
    for name, endpoint in ENDPOINTS.items():
        assert f"| `{name}` | `{endpoint.method} {endpoint.path}`" in README


def test_every_setting_is_documented_with_its_default() -> None:
    for name, field in MockSettings.model_fields.items():
        default = field.default
        shown = f"{default:.15g}" if isinstance(default, float) else str(default)
        assert f"| `AUTHLOAD_MOCK_{name.upper()}` | `{shown}` |" in README, name
