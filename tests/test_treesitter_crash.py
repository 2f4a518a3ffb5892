"""Guard against the py-tree-sitter Query segfault (#472, seen with tree-sitter 0.26.1).

Creating and dropping `tree_sitter.Query` objects while parsing crashed the interpreter on
0.26.1; we pin 0.25.2. A crash kills the process, so the loop runs in a subprocess and the
test checks its exit status (a segfault shows as a negative return code / -11).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent("""
    import gc
    import tree_sitter
    import tree_sitter_javascript
    import tree_sitter_python

    from codet5_lsp.server.documents import DocumentStore

    grammars = [
        (tree_sitter.Language(tree_sitter_python.language()),
         "(function_definition name: (identifier) @name)",
         b"def f(a):\\n    return a\\n" * 20),
        (tree_sitter.Language(tree_sitter_javascript.language()),
         "(function_declaration name: (identifier) @name)",
         b"function f(a) { return a; }\\n" * 20),
    ]
    store = DocumentStore()
    total = 0
    for i in range(300):
        language, source, code = grammars[i % 2]
        parser = tree_sitter.Parser(language)
        tree = parser.parse(code)
        query = tree_sitter.Query(language, source)
        captures = tree_sitter.QueryCursor(query).captures(tree.root_node)
        total += len(captures.get("name", []))
        del query, captures, tree, parser  # dropping Query objects is what crashed
        doc = store.open(f"file:///t{i % 3}.py", "def g():\\n    pass\\n" * 10, "python", i)
        assert doc.tree is not None
        if i % 50 == 0:
            gc.collect()
    assert total == 300 * 20, total
    print("ok", tree_sitter.__name__)
""")


@pytest.mark.slow
def test_query_create_drop_loop_does_not_crash():
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, (result.returncode, result.stderr[-2000:])
    assert result.stdout.strip() == "ok tree_sitter"


CURSOR_AFTER_LAST_ITEM = textwrap.dedent("""
    from lsprotocol import types

    from codet5_lsp.server.context import build_completion_context
    from codet5_lsp.server.documents import DocumentStore
    from codet5_lsp.server.syntax import top_level_item_at

    text = "import os\\n\\n" + "".join(
        f"def f{i}(a):\\n    return os.path.join(a, 'x{i}')\\n\\n" for i in range(200)) + "\\n\\n"
    doc = DocumentStore().open("file:///end.py", text, "python", 1)
    end = types.Position(line=doc.line_count - 1, character=0)  # in the trailing blank lines
    ctx = build_completion_context(doc, end, lambda s: len(s) // 3, 128, 0)
    assert ctx.prefix_truncated and ctx.prefix.endswith("\\n\\n")
    last = top_level_item_at(doc.tree.root_node, len(doc.source_bytes))
    assert doc.source_bytes[last.start_byte:last.end_byte].startswith(b"def f199")
    print("ok")
""")


def test_context_with_the_cursor_after_the_last_top_level_item_does_not_crash():
    """py-tree-sitter 0.25.2's Node.first_named_child_for_byte segfaults past the last child;
    the context step must not call it (a crash here would take the whole server down)."""
    result = subprocess.run(
        [sys.executable, "-c", CURSOR_AFTER_LAST_ITEM], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, (result.returncode, result.stderr[-2000:])
    assert result.stdout.strip() == "ok"
