"""`-a/--attach` and `--mmproj`: the files read and the projector found before any model
loads, so that a missing file or a model that cannot see fails at once."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from llmcli.errors import MediaInvalidError, MediaUnsupportedError
from llmcli.projector_files import check_projector, projector_for
from llmcli.remote_media import fetch, is_remote

if TYPE_CHECKING:
    from llmcli.engine.model import Model
    from llmcli.engine.vision import Attachment, MediaPrompt


def read_attachments(names: Sequence[str | Path]) -> list[Attachment]:
    """The files' bytes; an http(s) URL is fetched (see llmcli.remote_media)."""
    from llmcli.engine.vision import Attachment

    attachments = []
    for name in names:
        if isinstance(name, str) and is_remote(name):
            label = urlsplit(name).path.rsplit("/", 1)[-1] or name
            attachments.append(Attachment(label, fetch(name)))
            continue
        file = Path(name)
        try:
            data = file.expanduser().read_bytes()
        except IsADirectoryError:
            raise MediaInvalidError(f"cannot read {file}: it is a folder") from None
        except OSError as exc:
            raise MediaInvalidError(f"cannot read {file}: {exc.strerror}") from exc
        attachments.append(Attachment(file.name, data))
    return attachments


def needed_projector(model: Path, mmproj: Path | None, *, attached: bool, name: str) -> Path | None:
    """The projector to load: None when nothing is attached; MediaUnsupportedError when
    something is but the model has none; ModelInvalidError, before the model loads, when
    its header shows it is not one for this model."""
    projector = projector_for(model, mmproj)
    if not attached:
        return None
    if projector is None:
        raise MediaUnsupportedError(
            f"{name} has no projector, so it cannot read attachments",
            hint="use a vision model, or name its projector file with --mmproj FILE",
        )
    check_projector(model, projector)
    return projector


def media_prompt(
    llm: Model, tokens: list[int], attachments: Sequence[Attachment], projector: Path
) -> MediaPrompt:
    llm.use_projector(projector)
    return llm.media_prompt(tokens, attachments)
