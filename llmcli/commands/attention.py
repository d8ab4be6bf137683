"""`llmcli attention`: the attention weights of a real forward pass."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from llmcli import terminal
from llmcli.commands import _inside
from llmcli.commands import _options as opt
from llmcli.commands._invocation import Invocation
from llmcli.errors import UsageError
from llmcli.resolve.with_progress import model_file
from llmcli.ui import console

if TYPE_CHECKING:
    from llmcli.engine.attention import AttentionMaps
    from llmcli.ui.attention_view import Map

EPILOG = """\
Examples:

  llmcli attention "The cat sat on the mat because it was tired."

  llmcli attention --layer 3 --head 4 "one two three four five six"

  llmcli attention --heads all --save layer15.png "Paris is the capital of France."

  llmcli attention --json "Hello world" | jq '.maps[0].weights[-1]'

Output: on a terminal, a heat map (rows: each token; columns: the tokens it attends to),
cropped to the last tokens that fit, then what every head of every layer looks at
(P the previous token, F the first token, S itself). Piped: tab-separated lines (head,
position, token, then one weight per key token). --json: {"tokens", "layer", "maps":
[{"head", "weights"}], "overview": [{"layer", "head", "previous", "first", "self",
"kind"}]}. --save writes an image (.png, .svg, .html; needs the 'plot' extra).
"""


class Heads(str, Enum):
    all = "all"
    mean = "mean"


def register(app: typer.Typer) -> None:
    app.command(
        "attention",
        help="Show which tokens each token attends to, from a real forward pass.\n\n"
        f"{_inside.RULE} The text is the argument, stdin, or both.",
        epilog=EPILOG,
    )(attention)


def attention(
    context: typer.Context,
    text: _inside.TextArg = None,
    model: opt.ModelOpt = None,
    chat: _inside.ChatOpt = False,
    layer: Annotated[
        int | None,
        typer.Option(
            "--layer",
            "-l",
            help="Layer to map, from 0. Default: the middle one.",
            show_default=False,
        ),
    ] = None,
    head: Annotated[
        int | None,
        typer.Option("--head", help="Map this head only, from 0.", show_default=False),
    ] = None,
    heads: Annotated[
        Heads | None,
        typer.Option(
            "--heads",
            help="'mean': one map, the heads averaged (the default); 'all': one map per head.",
            show_default=False,
        ),
    ] = None,
    save: Annotated[
        Path | None,
        typer.Option(
            "--save",
            help="Also save the map(s) as .png, .svg or .html (needs matplotlib: "
            "the 'plot' extra).",
            show_default=False,
        ),
    ] = None,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print the maps, tokens and head overview as JSON.")
    ] = False,
    ctx: _inside.InsideCtxOpt = _inside.DEFAULT_INSIDE_CTX,
    threads: opt.ThreadsOpt = None,
    gpu_layers: opt.GpuLayersOpt = None,
    verbose: opt.VerboseOpt = False,
) -> None:
    if head is not None and heads is not None:
        raise UsageError("give --head or --heads, not both")
    if save is not None:
        from llmcli.ui import plots

        plots.check_target(save)
    words = _inside.text_argument(text)
    path = model_file(model)

    from llmcli.engine import attention as core

    with _inside.load(Invocation.from_context(context), path) as llm:
        core.check_choice(core.model_shape(llm), layer, head)
        found = core.attention(
            llm, _inside.prompt_tokens(llm, words, chat=chat), layer=layer, head=head, limit=ctx
        )

    maps = _maps(found, head, heads or Heads.mean)
    if save is not None:
        _save(save, found, maps)
    from llmcli.ui import attention_view as view

    if json_out:
        console.emit_json(_as_json(found, maps))
    elif terminal.current().stdout_rich:
        view.render(found.tokens, maps, found.overview, layer=found.layer)
    else:
        console.emit_text(view.maps_tsv(found.tokens, maps))


def _maps(found: AttentionMaps, head: int | None, heads: Heads) -> list[Map]:
    from llmcli.ui.attention_view import Map

    if head is not None:
        return [Map(head, found.head(head))]
    if heads is Heads.all:
        return [Map(h, found.head(h)) for h in range(found.shape.heads)]
    return [Map(None, found.mean())]


def _save(path: Path, found: AttentionMaps, maps: list[Map]) -> None:
    from llmcli.ui import attention_view as view
    from llmcli.ui import plots

    labels = [view.label(t) for t in found.tokens]
    plots.save_heat_maps(
        path, labels, [(m.title, m.weights) for m in maps], f"attention, layer {found.layer}"
    )
    console.notice(f"saved {path}")


def _as_json(found: AttentionMaps, maps: list[Map]) -> dict[str, Any]:
    return {
        "layer": found.layer,
        "layers": found.shape.layers,
        "heads": found.shape.heads,
        "kv_heads": found.shape.kv_heads,
        "tokens": [{"id": t.id, "text": t.text, "bytes": list(t.data)} for t in found.tokens],
        "maps": [
            {
                "head": "mean" if m.head is None else m.head,
                "weights": m.weights.tolist(),
            }
            for m in maps
        ],
        "overview": [
            {
                "layer": s.layer,
                "head": s.head,
                "previous": s.previous,
                "first": s.first,
                "self": s.self,
                "kind": s.kind,
            }
            for s in found.overview
        ],
    }
