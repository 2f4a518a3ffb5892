--- Pure text helpers for ghost text: no buffers, no windows, no LSP client.
--- Kept apart so that they can be tested with `nvim -l` without a server.
local M = {}

--- Split on "\n" keeping empty pieces ("a\n" -> {"a", ""}).
---@param s string
---@return string[]
function M.split_lines(s)
  local lines = {}
  local start = 1
  while true do
    local nl = s:find("\n", start, true)
    if not nl then
      lines[#lines + 1] = s:sub(start)
      return lines
    end
    lines[#lines + 1] = s:sub(start, nl - 1)
    start = nl + 1
  end
end

--- What is left to insert of `insert_text` once `typed` (the buffer text from the item's
--- range start to the cursor) is already there; nil when the user typed something else,
--- so the suggestion no longer fits and must not be shown.
---@param typed string
---@param insert_text string
---@return string|nil
function M.remainder(typed, insert_text)
  if insert_text:sub(1, #typed) ~= typed then
    return nil
  end
  return insert_text:sub(#typed + 1)
end

--- Lines to draw for `remainder`. `tail` is buffer text right of the cursor that the item
--- replaces (e.g. an auto-inserted ")"): it stays visible after inline virtual text, so it
--- is not drawn a second time when the suggestion ends with it.
---@param remainder string
---@param tail string
---@return string[]
function M.display_lines(remainder, tail)
  local lines = M.split_lines(remainder)
  if tail ~= "" and #lines == 1 and lines[1]:sub(-#tail) == tail then
    lines[1] = lines[1]:sub(1, #lines[1] - #tail)
  end
  return lines
end

--- The next "word" of a suggestion, for partial accept: leading blanks plus either a run
--- of identifier characters or a run of other non-blank characters; a line break (with the
--- next line's indentation) counts as one word.
---@param remainder string
---@return string
function M.next_word(remainder)
  if remainder == "" then
    return ""
  end
  local newline = remainder:match("^\n[ \t]*")
  if newline then
    return newline
  end
  local word = remainder:match("^[ \t]*[%w_]+") or remainder:match("^[ \t]*[^%w_%s]+")
    or remainder:match("^[ \t]+")
  return word or remainder:sub(1, 1)
end

--- End position (0-based row, byte col) after inserting `lines` at (row, col).
---@param row integer
---@param col integer
---@param lines string[]
---@return integer, integer
function M.end_position(row, col, lines)
  if #lines == 1 then
    return row, col + #lines[1]
  end
  return row + #lines - 1, #lines[#lines]
end

--- Byte index into `line` of an LSP `character` offset in `encoding`
--- ("utf-8" | "utf-16" | "utf-32"); clamps past the end of the line.
---@param line string
---@param character integer
---@param encoding string
---@return integer
function M.byte_col(line, character, encoding)
  if encoding == "utf-8" or character <= 0 then
    return math.min(math.max(character, 0), #line)
  end
  -- Count code units ourselves: vim.str_byteindex changed its signature in 0.11.
  local units = 0
  local i = 1
  while i <= #line do
    if units >= character then
      return i - 1
    end
    local byte = line:byte(i)
    local len = byte < 0x80 and 1 or byte < 0xE0 and 2 or byte < 0xF0 and 3 or 4
    units = units + ((encoding == "utf-16" and len == 4) and 2 or 1)
    i = i + len
  end
  return #line
end

--- Ctrl keys that, unmapped in insert mode, put their control character into the buffer
--- (found by pressing each in Neovim 0.11: <C-l> inserts a form feed, <C-b> ^B, ...).
local LITERAL_CTRL = { b = true, f = true, l = true, s = true, z = true, ["\\"] = true, _ = true }

--- Whether `lhs` (an insert-mode key such as "<C-l>" or "<Tab>") may do its own job when no
--- suggestion is shown: not when that job is to insert a control character, nor for a Meta
--- or Alt chord, which unmapped is <Esc> plus the key and so leaves insert mode.
---@param lhs string
---@return boolean
function M.insert_fallback_ok(lhs)
  local key = lhs:lower()
  if key:match("^<[ma]%-.+>$") then
    return false
  end
  local ctrl = key:match("^<c%-(.+)>$")
  if ctrl and LITERAL_CTRL[ctrl] then
    return false
  end
  return true
end

--- Lines of a buffer showing a `codet5.showContext` reply: a title, then for each part a
--- header line (kind and tokens) and its text exactly as the model sees it.
---@param parts {kind: string, tokens: integer, text: string}[]
---@param where string
---@return string[]
function M.context_lines(parts, where)
  local total = 0
  for _, part in ipairs(parts) do
    total = total + part.tokens
  end
  local lines = { ("CodeT5 context at %s: %d parts, %d tokens"):format(where, #parts, total) }
  for _, part in ipairs(parts) do
    lines[#lines + 1] = ("----- %s (%d tokens) -----"):format(part.kind, part.tokens)
    local text = part.text:sub(-1) == "\n" and part.text:sub(1, -2) or part.text
    vim.list_extend(lines, M.split_lines(text))
  end
  return lines
end

return M
