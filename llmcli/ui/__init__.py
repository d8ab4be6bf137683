"""Everything shown to the user: the only package that imports `rich`.

Heavy Rich modules load on first use, not at import, so `llmcli --help` stays fast.
"""
