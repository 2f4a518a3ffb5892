"""codet5-lsp: CodeT5+ completions and summaries behind the Language Server Protocol."""

__version__ = "0.1.0"
