"""Language registry: LSP languageId -> tree-sitter grammar and per-language node types.

Why: the context step (enclosing function, imports, strings/comments, block starts) and the
docstring action need to know, per language, which syntax nodes are functions, classes,
imports, strings and comments, and how that language writes doc comments. Keeping it in one
table keeps `context.py` language-agnostic.

Grammars load lazily (first use of a language) and are cached for the process. No
`tree_sitter.Query` is created here: tree-sitter 0.26.1 segfaults when Query objects are
dropped (py-tree-sitter #472), so the context code walks nodes instead.
Unknown languages give None: the document is still tracked as plain text and still gets
completions, only without syntax-aware context.
"""

from __future__ import annotations

import importlib
import threading
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

import tree_sitter

# grammar key -> (python module, function returning the language pointer)
_GRAMMAR_MODULES: dict[str, tuple[str, str]] = {
    "python": ("tree_sitter_python", "language"),
    "java": ("tree_sitter_java", "language"),
    "javascript": ("tree_sitter_javascript", "language"),
    "typescript": ("tree_sitter_typescript", "language_typescript"),
    "tsx": ("tree_sitter_typescript", "language_tsx"),
    "go": ("tree_sitter_go", "language"),
    "ruby": ("tree_sitter_ruby", "language"),
    "php": ("tree_sitter_php", "language_php"),
    "php_only": ("tree_sitter_php", "language_php_only"),
    "c": ("tree_sitter_c", "language"),
    "cpp": ("tree_sitter_cpp", "language"),
    "c_sharp": ("tree_sitter_c_sharp", "language"),
    "rust": ("tree_sitter_rust", "language"),
}

# LSP languageId (and common aliases) -> grammar key. The JavaScript grammar parses JSX, so
# javascriptreact uses it; typescriptreact needs the TSX grammar (plain TS rejects JSX).
_LANGUAGE_ALIASES: dict[str, str] = {
    "python": "python",
    "py": "python",
    "java": "java",
    "javascript": "javascript",
    "js": "javascript",
    "javascriptreact": "javascript",
    "jsx": "javascript",
    "typescript": "typescript",
    "ts": "typescript",
    "typescriptreact": "tsx",
    "tsx": "tsx",
    "go": "go",
    "golang": "go",
    "ruby": "ruby",
    "rb": "ruby",
    "php": "php",
    "php_only": "php_only",
    "c": "c",
    "cpp": "cpp",
    "c++": "cpp",
    "csharp": "c_sharp",
    "c_sharp": "c_sharp",
    "c#": "c_sharp",
    "cs": "c_sharp",
    "rust": "rust",
    "rs": "rust",
}

_EXTENSIONS: dict[str, str] = {
    ".py": "python",
    ".pyi": "python",
    ".pyw": "python",
    ".java": "java",
    ".js": "javascript",
    ".mjs": "javascript",
    ".cjs": "javascript",
    ".jsx": "javascriptreact",
    ".ts": "typescript",
    ".mts": "typescript",
    ".cts": "typescript",
    ".tsx": "typescriptreact",
    ".go": "go",
    ".rb": "ruby",
    ".rake": "ruby",
    ".php": "php",
    ".c": "c",
    ".h": "c",
    ".cc": "cpp",
    ".cpp": "cpp",
    ".cxx": "cpp",
    ".hpp": "cpp",
    ".hh": "cpp",
    ".hxx": "cpp",
    ".cs": "csharp",
    ".rs": "rust",
}

# Doc-comment styles (used by the docstring action and to find a definition's doc comment).
DOC_PYTHON = "python"  # docstring: first statement of the body
DOC_JSDOC = "/**"  # /** ... */ just above the definition
DOC_TRIPLE_SLASH = "///"  # /// lines above (C#, Rust)
DOC_DOUBLE_SLASH = "//"  # // lines above (Go)
DOC_HASH = "#"  # # lines above (Ruby)


@dataclass(frozen=True)
class LanguageSpec:
    """Node types of one grammar that the context step cares about."""

    grammar: str
    functions: frozenset[str]
    classes: frozenset[str]
    imports: frozenset[str]
    strings: frozenset[str]
    comments: frozenset[str]
    doc_style: str
    # Code nested in a string (f-string / template substitutions): not "in a string".
    interpolations: frozenset[str] = frozenset()
    # Nodes that wrap a definition without being one (decorators, export, `const f = ...`).
    wrappers: frozenset[str] = frozenset()
    # Nodes whose children are searched for imports (namespaces, include guards).
    import_containers: frozenset[str] = frozenset()
    # Calls that import (require in Ruby/JS); matched on the call's function name.
    import_calls: frozenset[str] = frozenset()
    # Functions that only count as definitions when their name comes from a parent
    # (`const f = () => {}`); anonymous callbacks are skipped.
    anonymous_functions: frozenset[str] = frozenset()
    block_opener: str = "{"  # ":" for Python, "{" for brace languages, "keyword" for Ruby
    line_comment: str = "//"


_JS_FUNCTIONS = frozenset(
    {
        "function_declaration",
        "generator_function_declaration",
        "method_definition",
        "function_expression",
        "function",
        "arrow_function",
        "generator_function",
    }
)
_JS_STRINGS = frozenset({"string", "template_string", "regex"})
_JS_WRAPPERS = frozenset(
    {
        "export_statement",
        "lexical_declaration",
        "variable_declaration",
        "variable_declarator",
        "public_field_definition",
        "field_definition",
        "pair",
        "assignment_expression",
        "expression_statement",
    }
)

_TS_SPEC: dict[str, Any] = dict(
    functions=_JS_FUNCTIONS,
    classes=frozenset(
        {"class_declaration", "abstract_class_declaration", "class", "interface_declaration"}
    ),
    imports=frozenset({"import_statement"}),
    strings=_JS_STRINGS,
    comments=frozenset({"comment"}),
    doc_style=DOC_JSDOC,
    interpolations=frozenset({"template_substitution", "jsx_expression"}),
    wrappers=_JS_WRAPPERS,
    import_calls=frozenset({"require"}),
    anonymous_functions=frozenset(
        {"function_expression", "function", "arrow_function", "generator_function"}
    ),
)

_C_FAMILY_CONTAINERS = frozenset(
    {
        "preproc_ifdef",
        "preproc_if",
        "preproc_else",
        "preproc_elif",
        "namespace_definition",
        "declaration_list",
        "linkage_specification",
    }
)

SPECS: dict[str, LanguageSpec] = {
    "python": LanguageSpec(
        grammar="python",
        functions=frozenset({"function_definition"}),
        classes=frozenset({"class_definition"}),
        imports=frozenset({"import_statement", "import_from_statement", "future_import_statement"}),
        strings=frozenset({"string", "concatenated_string"}),
        comments=frozenset({"comment"}),
        doc_style=DOC_PYTHON,
        interpolations=frozenset({"interpolation"}),
        wrappers=frozenset({"decorated_definition"}),
        import_containers=frozenset(
            {"if_statement", "try_statement", "block", "except_clause", "else_clause"}
        ),
        block_opener=":",
        line_comment="#",
    ),
    "java": LanguageSpec(
        grammar="java",
        functions=frozenset(
            {"method_declaration", "constructor_declaration", "compact_constructor_declaration"}
        ),
        classes=frozenset(
            {
                "class_declaration",
                "interface_declaration",
                "enum_declaration",
                "record_declaration",
                "annotation_type_declaration",
            }
        ),
        imports=frozenset({"import_declaration"}),
        strings=frozenset({"string_literal", "text_block", "character_literal"}),
        comments=frozenset({"line_comment", "block_comment"}),
        doc_style=DOC_JSDOC,
        interpolations=frozenset({"string_interpolation"}),
    ),
    "javascript": LanguageSpec(
        grammar="javascript",
        **{**_TS_SPEC, "classes": frozenset({"class_declaration", "class"})},
    ),
    "typescript": LanguageSpec(grammar="typescript", **_TS_SPEC),
    "tsx": LanguageSpec(grammar="tsx", **_TS_SPEC),
    "go": LanguageSpec(
        grammar="go",
        functions=frozenset({"function_declaration", "method_declaration"}),
        classes=frozenset({"type_declaration"}),
        imports=frozenset({"import_declaration"}),
        strings=frozenset({"interpreted_string_literal", "raw_string_literal", "rune_literal"}),
        comments=frozenset({"comment"}),
        doc_style=DOC_DOUBLE_SLASH,
    ),
    "ruby": LanguageSpec(
        grammar="ruby",
        functions=frozenset({"method", "singleton_method"}),
        classes=frozenset({"class", "module", "singleton_class"}),
        imports=frozenset(),
        strings=frozenset({"string", "heredoc_body", "regex", "subshell"}),
        comments=frozenset({"comment"}),
        doc_style=DOC_HASH,
        interpolations=frozenset({"interpolation"}),
        import_calls=frozenset({"require", "require_relative", "load", "autoload"}),
        block_opener="keyword",
        line_comment="#",
    ),
    "c": LanguageSpec(
        grammar="c",
        functions=frozenset({"function_definition"}),
        classes=frozenset(),
        imports=frozenset({"preproc_include"}),
        strings=frozenset({"string_literal", "char_literal", "system_lib_string"}),
        comments=frozenset({"comment"}),
        doc_style=DOC_JSDOC,
        import_containers=_C_FAMILY_CONTAINERS,
    ),
    "cpp": LanguageSpec(
        grammar="cpp",
        functions=frozenset({"function_definition"}),
        classes=frozenset({"class_specifier", "struct_specifier"}),
        imports=frozenset({"preproc_include", "using_declaration"}),
        strings=frozenset(
            {"string_literal", "raw_string_literal", "char_literal", "system_lib_string"}
        ),
        comments=frozenset({"comment"}),
        doc_style=DOC_JSDOC,
        wrappers=frozenset({"template_declaration"}),
        import_containers=_C_FAMILY_CONTAINERS,
    ),
    "c_sharp": LanguageSpec(
        grammar="c_sharp",
        functions=frozenset(
            {
                "method_declaration",
                "constructor_declaration",
                "destructor_declaration",
                "operator_declaration",
                "local_function_statement",
            }
        ),
        classes=frozenset(
            {
                "class_declaration",
                "interface_declaration",
                "struct_declaration",
                "record_declaration",
                "enum_declaration",
            }
        ),
        imports=frozenset({"using_directive"}),
        strings=frozenset(
            {
                "string_literal",
                "verbatim_string_literal",
                "raw_string_literal",
                "interpolated_string_expression",
                "character_literal",
            }
        ),
        comments=frozenset({"comment"}),
        doc_style=DOC_TRIPLE_SLASH,
        interpolations=frozenset({"interpolation"}),
        import_containers=frozenset(
            {"namespace_declaration", "declaration_list", "file_scoped_namespace_declaration"}
        ),
    ),
    "rust": LanguageSpec(
        grammar="rust",
        functions=frozenset({"function_item"}),
        classes=frozenset({"impl_item", "trait_item", "mod_item"}),
        imports=frozenset({"use_declaration", "extern_crate_declaration"}),
        strings=frozenset({"string_literal", "raw_string_literal", "char_literal"}),
        comments=frozenset({"line_comment", "block_comment"}),
        doc_style=DOC_TRIPLE_SLASH,
    ),
}

_PHP: dict[str, Any] = dict(
    functions=frozenset({"function_definition", "method_declaration"}),
    classes=frozenset(
        {"class_declaration", "interface_declaration", "trait_declaration", "enum_declaration"}
    ),
    imports=frozenset(
        {
            "namespace_use_declaration",
            "require_expression",
            "require_once_expression",
            "include_expression",
            "include_once_expression",
        }
    ),
    strings=frozenset({"string", "encapsed_string", "heredoc", "nowdoc"}),
    comments=frozenset({"comment"}),
    doc_style=DOC_JSDOC,
    import_containers=frozenset(
        {"namespace_definition", "compound_statement", "expression_statement"}
    ),
)
SPECS["php"] = LanguageSpec(grammar="php", **_PHP)
SPECS["php_only"] = LanguageSpec(grammar="php_only", **_PHP)

_languages: dict[str, tree_sitter.Language] = {}
_lock = threading.Lock()


def grammar_key(language_id: str | None) -> str | None:
    """The grammar key for an LSP languageId or alias ("typescriptreact" -> "tsx"), or None."""
    if not language_id:
        return None
    return _LANGUAGE_ALIASES.get(language_id.strip().lower())


def spec_for(language_id: str | None) -> LanguageSpec | None:
    """Node-type table for a languageId, or None for languages without a grammar."""
    key = grammar_key(language_id)
    return SPECS.get(key) if key else None


def language_for(language_id: str | None) -> tree_sitter.Language | None:
    """The tree-sitter Language for a languageId (loaded once, then cached), or None."""
    key = grammar_key(language_id)
    if key is None:
        return None
    cached = _languages.get(key)
    if cached is not None:
        return cached
    with _lock:
        if key not in _languages:
            module_name, function = _GRAMMAR_MODULES[key]
            module = importlib.import_module(module_name)
            _languages[key] = tree_sitter.Language(getattr(module, function)())
        return _languages[key]


def new_parser(language_id: str | None) -> tree_sitter.Parser | None:
    """A fresh Parser for the language (one per document: parsers are not thread-safe)."""
    language = language_for(language_id)
    return tree_sitter.Parser(language) if language is not None else None


def language_id_for_path(path: str | PurePath) -> str:
    """The LSP languageId an editor would send for this file name ("plaintext" if unknown)."""
    return _EXTENSIONS.get(PurePath(path).suffix.lower(), "plaintext")


def doc_comment_style(language_id: str | None) -> str | None:
    """How the language writes doc comments (one of the DOC_* constants), or None."""
    spec = spec_for(language_id)
    return spec.doc_style if spec else None


def supported_language_ids() -> tuple[str, ...]:
    """All languageIds and aliases that map to a grammar."""
    return tuple(sorted(_LANGUAGE_ALIASES))
