"""From what the user typed after `-m` to a local GGUF file, pulling it when needed.

Two modules, because they sit in different layers: `resolver` stays below `llmcli.ui`
(the server uses it), `with_progress` adds the download progress shown on stderr.

    resolver       references read with the user's config, the cache searched, the Hub
                   asked; the default model and per-model option defaults
    with_progress  the same, for a command that loads a model
"""
