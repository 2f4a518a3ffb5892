"""The LSP side of codet5-lsp: documents, context, prompts' callers, handlers, CLI."""
