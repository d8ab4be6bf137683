"""`llmcli explain --html`: the story as one self-contained page.

The page is the template `explain_page.html` (package data) with the story's JSON and
sentences inlined: its own script draws every picture (SVG and canvas) in the browser,
so the file references nothing outside itself and works offline, from any folder.
"""

from __future__ import annotations

import html
import json
from importlib import resources
from pathlib import Path
from typing import Any

from llmcli.atomic import write_atomic
from llmcli.errors import LlmcliError
from llmcli.explain import prose

TEMPLATE = "explain_page.html"


def _script_json(data: Any) -> str:
    """JSON that is safe inside <script>: no "</script>", "<!--" or line separators can
    end or bend the element, whatever the user's text holds."""
    text = json.dumps(data, ensure_ascii=True, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def page(story: dict[str, Any]) -> str:
    template = resources.files("llmcli.ui").joinpath(TEMPLATE).read_text(encoding="utf-8")
    data = {"story": story, "prose": prose.sections(story), "titles": prose.TITLES}
    name = story["network"]["name"] or "a language model"
    title = f"How {name} reads “{story['tokens']['text'][:60]}”"
    # The title sits before the data in the template: split there, so that a text that
    # spells a placeholder is never replaced.
    head, tail = template.split("__DATA__")
    return head.replace("__TITLE__", html.escape(title)) + _script_json(data) + tail


def write(path: Path, story: dict[str, Any]) -> None:
    try:
        write_atomic(path, page(story))
    except OSError as exc:
        raise LlmcliError(f"cannot write {path}: {exc.strerror or exc}") from exc
