"""codet5-lsp: CodeT5+ completions and summaries behind the Language Server Protocol."""

import os as _os

# CTranslate2's wheel runs its CPU threads on GNU OpenMP, whose idle threads spin for a long
# while after each parallel region. After every generation that spin took both cores of a
# 2-core machine just when the editor's next request arrived, slowing even cached hovers.
# 10,000 keeps the threads hot between the kernels of one decoding step and lets them sleep
# soon after (figures: bench/results/summaries.md). libgomp
# reads this when it is loaded, so it is set here, before anything imports ctranslate2; a
# value the user set wins.
_os.environ.setdefault("GOMP_SPINCOUNT", "10000")

__version__ = "0.1.0"
