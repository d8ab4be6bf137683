"""`llmcli chat`, one module per job.

- `conversation`: the messages, settings and thinking choice of one chat (plain data)
- `settings`: what `/set` changes, checked against the options table
- `trimming`: fitting a long conversation into the context window
- `commands`: the slash commands, a table of handlers that also writes `/help`
- `multiline`: \"\"\" blocks, typed or piped
- `chat_file`: the saved-chat JSON format, written atomically
- `session`: a conversation wired to a loaded model and the screen
- `ctrl_c`: Ctrl-C while an answer streams
- `repl`: where messages come from (the line editor, or a pipe) and the loop

Everything up to `chat_file` is pure (no terminal, no model) and unit-tested quickly.
Importing the package itself is free: it re-exports nothing.
"""
