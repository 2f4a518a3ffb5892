-- Neovim init for the end-to-end tests (tests/test_neovim.py) and the screenshot script.
-- Environment: CODET5_TEST_CMD = JSON list, the server command line.
local root = vim.fn.fnamemodify(debug.getinfo(1, "S").source:sub(2), ":p:h:h")
vim.opt.runtimepath:prepend(root)
vim.opt.swapfile = false
vim.opt.shortmess:append("I")
vim.opt.termguicolors = true

local cmd = vim.json.decode((assert(os.getenv("CODET5_TEST_CMD"), "CODET5_TEST_CMD is not set")))
require("codet5").setup({
  cmd = cmd,
  debounce_ms = 20,
  log_file = false,
})

--- Probes for the test driver, called through `nvim --server ... --remote-expr`.
_G.T = {}

local function json(value)
  return vim.json.encode(value)
end

--- Mode, cursor line, server status and the ghost text drawn by codet5.ghost.
function T.state()
  local ghost = require("codet5.ghost")
  local bufnr = vim.api.nvim_get_current_buf()
  local marks = vim.api.nvim_buf_get_extmarks(bufnr, ghost.namespace, 0, -1, { details = true })
  local first, rest = nil, {}
  if marks[1] then
    local details = marks[1][4]
    first = ""
    for _, chunk in ipairs(details.virt_text or {}) do
      first = first .. chunk[1]
    end
    for _, line in ipairs(details.virt_lines or {}) do
      local text = ""
      for _, chunk in ipairs(line) do
        text = text .. chunk[1]
      end
      rest[#rest + 1] = text
    end
  end
  local pos = vim.api.nvim_win_get_cursor(0)
  return json({
    mode = vim.api.nvim_get_mode().mode,
    line = vim.api.nvim_get_current_line(),
    lines = vim.api.nvim_buf_get_lines(bufnr, 0, -1, false),
    cursor = pos,
    status = require("codet5").status or vim.NIL,
    clients = #require("codet5").clients(),
    ghost = first or vim.NIL,
    ghost_lines = rest,
    ghost_pos = marks[1] and { marks[1][2], marks[1][3] } or vim.NIL,
  })
end

--- What the server suggests at the cursor right now (a second, synchronous request).
function T.inline_sync()
  local client = require("codet5").clients()[1]
  local params = vim.lsp.util.make_position_params(0, client.offset_encoding)
  params.context = { triggerKind = 1 }
  local response = client:request_sync("textDocument/inlineCompletion", params, 120000, 0)
  if not response or response.err or not response.result then
    return json({ error = response and response.err or "no response" })
  end
  local items = response.result.items or response.result
  return json({ item = items[1] or vim.NIL })
end

--- insertText of every item the server offers at the cursor (a synchronous request).
function T.inline_items()
  local client = require("codet5").clients()[1]
  local params = vim.lsp.util.make_position_params(0, client.offset_encoding)
  params.context = { triggerKind = 1 }
  local response = client:request_sync("textDocument/inlineCompletion", params, 120000, 0)
  if not response or response.err or not response.result then
    return json({ error = response and response.err or "no response" })
  end
  local texts = {}
  for _, item in ipairs(response.result.items or response.result) do
    texts[#texts + 1] = item.insertText
  end
  return json(texts)
end

--- Which of the server's items the ghost text shows, e.g. [2, 3]; null when none.
function T.ghost_position()
  return json(require("codet5.ghost").position() or vim.NIL)
end

--- The ghost-text highlight as defined (not following links).
function T.ghost_hl()
  return json(vim.api.nvim_get_hl(0, { name = "CodeT5Ghost", link = false }))
end

--- Text of the floating windows (the hover of `K`).
function T.floats()
  local texts = {}
  for _, win in ipairs(vim.api.nvim_list_wins()) do
    if vim.api.nvim_win_get_config(win).relative ~= "" then
      local buf = vim.api.nvim_win_get_buf(win)
      texts[#texts + 1] = table.concat(vim.api.nvim_buf_get_lines(buf, 0, -1, false), "\n")
    end
  end
  return json(texts)
end

--- Screen cell of the cursor, 0-based "row,col" (for the screenshot's block cursor).
function T.screen_cursor()
  local pos = vim.fn.screenpos(0, vim.fn.line("."), vim.fn.col("."))
  return ("%d,%d"):format(pos.row - 1, pos.col - 1)
end
