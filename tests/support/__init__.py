"""What several test modules share: one LSP harness (`lsp`), the source texts they edit
(`sources`), paths and tools (`paths`), real-time waiting for other processes (`polling`) and
the tiny checkpoints built in tests (`checkpoints`).

Test modules import from here, never from each other; fixtures stay in tests/conftest.py.
"""
