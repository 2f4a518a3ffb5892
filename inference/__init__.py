"""The model side of codet5-lsp: model resolution, conversion, tokenization, the engine."""
