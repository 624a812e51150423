"""axe-core in Chromium on every public page, in French and English, at phone, tablet and desktop widths."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from axe_playwright_python.sync_playwright import Axe  # type: ignore[import-untyped]  # it ships no type information
from playwright.sync_api import Page

if TYPE_CHECKING:
    from .conftest import LastPage

WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
INFORMATION_TAGS = ["best-practice"]
AXE = Axe()  # axe-core as bundled by axe-playwright-python, through its public API
AXE_OPTIONS = {"runOnly": {"type": "tag", "values": WCAG_TAGS + INFORMATION_TAGS}, "resultTypes": ["violations"]}


def run_axe(page: Page) -> list[dict[str, Any]]:
    """axe's violations for the WCAG 2.1 A/AA rules and the best practices (the context bypasses the CSP)."""
    violations: list[dict[str, Any]] = AXE.run(page, options=AXE_OPTIONS).response["violations"]
    return violations


def is_wcag(violation: dict[str, Any]) -> bool:
    return bool(set(violation["tags"]) & set(WCAG_TAGS))


def describe(violations: list[dict[str, Any]], where: str) -> str:
    """One paragraph per rule: id, impact, help, URL, and the failing elements' selectors."""
    lines = [f"{len(violations)} WCAG 2.1 A/AA violation(s) on {where}:"]
    for violation in violations:
        lines.append(f"- {violation['id']} ({violation['impact']}): {violation['help']}")
        lines.append(f"  {violation['helpUrl']}")
        for node in violation["nodes"][:8]:
            target = " ".join(str(part) for part in node["target"])
            summary = " ".join(line.strip() for line in node.get("failureSummary", "").splitlines()[1:])
            lines.append(f"    {target} — {summary}")
            lines.append(f"      {' '.join(node['html'].split())[:160]}")
        if len(violation["nodes"]) > 8:
            lines.append(f"    … and {len(violation['nodes']) - 8} more")
    return "\n".join(lines)


def test_no_wcag_violation(
    last_page: LastPage,
    page_path: str,
    lang: str,
    width: int,
    screenshot_file: Path,
    best_practice: dict[str, set[str]],
) -> None:
    page = last_page.at(page_path, lang, width)
    assert page.evaluate("document.documentElement.lang") == lang[:2]
    page.screenshot(path=screenshot_file, full_page=True)

    violations = run_axe(page)
    for violation in violations:
        if not is_wcag(violation):
            best_practice.setdefault(violation["id"], set()).add(page_path)
    failures = [v for v in violations if is_wcag(v)]
    assert not failures, describe(failures, f"{page_path} ({lang}, {width} px)")
