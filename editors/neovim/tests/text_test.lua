-- Unit tests of codet5.text, run with: nvim -l editors/neovim/tests/text_test.lua
-- Prints "N passed, 0 failed" and exits non-zero on a failure.
local root = vim.fn.fnamemodify(debug.getinfo(1, "S").source:sub(2), ":p:h:h")
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
local text = require("codet5.text")

local passed, failed = 0, 0
local function check(name, got, want)
  if vim.deep_equal(got, want) then
    passed = passed + 1
  else
    failed = failed + 1
    io.stderr:write(("FAIL %s: got %s, want %s\n"):format(name, vim.inspect(got), vim.inspect(want)))
  end
end

check("split keeps empty pieces", text.split_lines("a\n\nb\n"), { "a", "", "b", "" })
check("split one line", text.split_lines("abc"), { "abc" })

check("remainder after typed prefix", text.remainder("    ret", "    return x"), "urn x")
check("remainder of empty typed", text.remainder("", "foo()"), "foo()")
check("diverged typing gives nil", text.remainder("    rex", "    return x"), nil)
check("fully typed gives empty", text.remainder("ab", "ab"), "")

check("tail not drawn twice", text.display_lines("path)", ")"), { "path" })
check("tail kept when not a suffix", text.display_lines("path, 'r'", ")"), { "path, 'r'" })
check("multi-line display", text.display_lines("a\n    b", ""), { "a", "    b" })

check("word: identifier", text.next_word("open(path)"), "open")
check("word: leading blanks kept", text.next_word("  x = 1"), "  x")
check("word: punctuation run", text.next_word("(path)"), "(")
check("word: punctuation run 2", text.next_word("):\n    pass"), "):")
check("word: newline with indent", text.next_word("\n    return x"), "\n    ")
check("word: empty", text.next_word(""), "")

check("end position one line", { text.end_position(3, 4, { "abc" }) }, { 3, 7 })
check("end position two lines", { text.end_position(3, 4, { "abc", "  de" }) }, { 4, 4 })

check("utf-8 col", text.byte_col("héllo", 3, "utf-8"), 3)
check("utf-16 col after é", text.byte_col("héllo", 2, "utf-16"), 3)
check("utf-16 col after emoji", text.byte_col("a😀b", 3, "utf-16"), 5)
check("utf-32 col after emoji", text.byte_col("a😀b", 2, "utf-32"), 5)
check("col clamps", text.byte_col("ab", 10, "utf-16"), 2)

check("context parts under their headers", text.context_lines({
  { kind = "imports", tokens = 3, text = "import os\n\n" },
  { kind = "cursor_window", tokens = 5, text = "def f():\n    return os." },
}, "a.py:2:14"), {
  "CodeT5 context at a.py:2:14: 2 parts, 8 tokens",
  "----- imports (3 tokens) -----", "import os", "",
  "----- cursor_window (5 tokens) -----", "def f():", "    return os.",
})

check("<C-l> would insert a form feed", text.insert_fallback_ok("<C-l>"), false)
check("<c-L> too, in any case", text.insert_fallback_ok("<c-L>"), false)
check("<M-l> would leave insert mode", text.insert_fallback_ok("<M-l>"), false)
check("<A-]> too", text.insert_fallback_ok("<A-]>"), false)
check("<M-[> too", text.insert_fallback_ok("<M-[>"), false)
check("<C-]> expands abbreviations", text.insert_fallback_ok("<C-]>"), true)
check("<Tab> indents", text.insert_fallback_ok("<Tab>"), true)
check("<C-e> has a meaning", text.insert_fallback_ok("<C-e>"), true)

io.stdout:write(("%d passed, %d failed\n"):format(passed, failed))
if failed > 0 then
  os.exit(1)
end
