"""Shell completion, in three parts that never import the app:

protocol  the answers a completion script asks for, on every Tab press
values    the model names offered for option values
scripts   the bash, zsh and fish scripts (`python -m llmcli.completion` rewrites
          the copies in completions/)
"""

# Command options import the model completer from the package.
from llmcli.completion.values import complete_model

__all__ = ["complete_model"]
