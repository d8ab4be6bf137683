"""`llmcli explain --html`: the page renders in a real headless Chromium with a clean
console, has every section, answers the mouse, and references nothing outside itself."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser import INSTALL_HINT, Browser, PageReport, chromium, find_chromium
from clihelpers import run_cli

ONE_THREAD = ("--threads", "1")
SECTIONS = ["tokens", "embeddings", "network", "attention", "lens", "next", "continuation"]
# A text that would break a page built carelessly: markup, a script end, quotes, entities.
TRICKY = 'The <b>bold</b> "</script><script>document.title=1</script>" & so on is'


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    binary = find_chromium()
    if binary is None:
        pytest.fail(INSTALL_HINT)
    with chromium(binary, tmp_path_factory.mktemp("chromium-profile")) as b:
        yield b


def _page(model: Path, folder: Path, text: str) -> Path:
    target = folder / "story.html"
    proc = run_cli("explain", "-m", str(model), *ONE_THREAD, "--html", str(target), text)
    assert proc.returncode == 0, proc.stderr
    assert f"wrote {target}" in proc.stderr
    return target


@pytest.fixture(scope="module")
def loaded(
    browser: Browser, model_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, PageReport, str]:
    page = _page(model_file, tmp_path_factory.mktemp("page"), "The cat sat on the mat because it")
    report, session = browser.load(page)
    return page, report, session


def _clean(report: PageReport) -> None:
    assert report.exceptions == []
    assert [c for c in report.console if c[0] in ("error", "warning", "assert")] == []


def test_the_page_renders_with_a_clean_console(
    loaded: tuple[Path, PageReport, str], browser: Browser, tmp_path: Path
) -> None:
    _, report, session = loaded
    _clean(report)
    assert browser.evaluate(session, "document.body.dataset.ready") == "yes"
    shot = report.screenshot
    assert shot[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(shot[16:20], "big"), int.from_bytes(shot[20:24], "big")
    assert width >= 1200 and height > 3000, (width, height)  # the whole page, not a blank view
    (tmp_path / "explain.png").write_bytes(shot)


def test_every_section_is_drawn(loaded: tuple[Path, PageReport, str], browser: Browser) -> None:
    _, _, session = loaded
    found: list[dict[str, Any]] = browser.evaluate(
        session,
        "[...document.querySelectorAll('section')].map(s => ({id: s.id, "
        "height: s.getBoundingClientRect().height, text: s.innerText.length}))",
    )
    assert [s["id"] for s in found] == [f"section-{name}" for name in SECTIONS]
    assert all(s["height"] > 100 and s["text"] > 100 for s in found), found
    counts = browser.evaluate(
        session,
        "({svg: document.querySelectorAll('svg').length, "
        "canvas: document.querySelectorAll('#section-attention canvas').length, "
        "lensRows: document.querySelectorAll('table.lens tr').length, "
        "lensShades: new Set([...document.querySelectorAll('table.lens td:not(.layer)')]"
        ".map(td => td.style.background)).size, "
        "tokens: document.querySelectorAll('#section-tokens .tok').length})",
    )
    assert counts["svg"] >= 3 and counts["canvas"] == 1
    assert counts["lensRows"] == 31  # a header and SmolLM2's 30 layers
    assert counts["lensShades"] > 10, "lens cells are coloured by probability"
    assert counts["tokens"] == 8  # The, cat, sat, on, the, mat, because, it


def test_hovering_a_token_shows_what_it_attends_to(
    loaded: tuple[Path, PageReport, str], browser: Browser
) -> None:
    _, _, session = loaded
    script = """(() => {
      const chips = [...document.querySelectorAll('#section-attention .tokens .tok')];
      const before = chips.map(c => c.style.background);
      chips[2].dispatchEvent(new MouseEvent('mouseenter'));
      return {before, after: chips.map(c => c.style.background),
              later: chips.slice(3).map(c => c.style.opacity), title: chips[0].title};
    })()"""
    seen = browser.evaluate(session, script)
    assert seen["after"] != seen["before"]
    assert set(seen["later"]) == {"0.35"}, "tokens after the hovered one are faded"
    assert re.match(r"[\d.]+% of \"␣sat\"'s attention", seen["title"]), seen["title"]


def test_the_page_references_nothing_outside_itself(loaded: tuple[Path, PageReport, str]) -> None:
    page, report, _ = loaded
    assert report.requests == [page.resolve().as_uri()]
    html = page.read_text(encoding="utf-8")
    assert not re.search(r"""\b(?:src|href)\s*=\s*["'](?!#)""", html)
    assert "@import" not in html and "url(" not in html
    assert "Content-Security-Policy" in html  # and the browser would refuse anything remote


def test_markup_in_the_text_stays_text(browser: Browser, model_file: Path, tmp_path: Path) -> None:
    page = _page(model_file, tmp_path, TRICKY)
    report, session = browser.load(page)
    _clean(report)
    assert browser.evaluate(session, "document.body.dataset.ready") == "yes"
    bold = "[...document.querySelectorAll('b')].some(b => b.textContent === 'bold')"
    assert browser.evaluate(session, bold) is False
    assert "<b>bold</b>" in browser.evaluate(session, "document.title")
    continuation = browser.evaluate(
        session, "document.querySelector('.continuation .given').textContent"
    )
    assert continuation == TRICKY
