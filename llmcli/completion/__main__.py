"""`python -m llmcli.completion [FOLDER]`: rewrite the scripts in completions/."""

import sys

from llmcli.completion.scripts import write_scripts

write_scripts(sys.argv[1] if len(sys.argv) > 1 else "completions")
