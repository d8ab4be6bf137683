"""`llmcli explain`: the story of how the model answers, as plain data and sentences.

`story` turns what the engine measured into one JSON-ready object (what `--json`
prints); `prose` writes the sentences of each section from that object. The terminal
page and the HTML page (llmcli/ui/) are two renderers of the same object.
"""
