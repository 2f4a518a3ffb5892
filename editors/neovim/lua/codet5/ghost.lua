--- Ghost text for Neovim 0.10/0.11, which have no vim.lsp.inline_completion:
--- requests `textDocument/inlineCompletion` while typing (debounced), draws the first
--- line at the cursor as inline virtual text and further lines as virt_lines, and
--- accepts all of it or one word.
local text = require("codet5.text")

local M = {}

local api = vim.api
local uv = vim.uv or vim.loop

M.namespace = api.nvim_create_namespace("codet5.ghost")

---@class codet5.GhostItem
---@field client_id integer
---@field start_row integer 0-based row of the item's range start
---@field start_col integer byte col of the item's range start
---@field insert_text string
---@field tail string buffer text between the request's cursor and the range end
---@field command? table

---@class codet5.GhostState
---@field item? codet5.GhostItem the item shown (one of `items`)
---@field items? codet5.GhostItem[] every item of the last answer (the server's n-best)
---@field index? integer position of `item` in `items`
---@field extmark? integer
---@field pos? integer[] {row, col} (0-based) where the ghost is drawn
---@field remainder? string
---@field timer? uv.uv_timer_t
---@field request? {client_id: integer, id: integer}
---@field seq integer
---@field tick? integer changedtick when the ghost was drawn

---@type table<integer, codet5.GhostState>
local states = {}

---@type {debounce_ms: integer, hl_group: string, client_name: string, enabled: fun(bufnr: integer): boolean}
local options = {
  debounce_ms = 50,
  hl_group = "CodeT5Ghost",
  client_name = "codet5",
  enabled = function()
    return true
  end,
}

local function state_of(bufnr)
  local state = states[bufnr]
  if not state then
    state = { seq = 0 }
    states[bufnr] = state
  end
  return state
end

local function cursor(win)
  local pos = api.nvim_win_get_cursor(win or 0)
  return pos[1] - 1, pos[2]
end

local function client_for(bufnr)
  local get = vim.lsp.get_clients or vim.lsp.get_active_clients
  return get({ bufnr = bufnr, name = options.client_name })[1]
end

-- Client methods are called with ":" from 0.11 on; "." is deprecated there.
local has_011 = vim.fn.has("nvim-0.11") == 1

local function client_request(client, method, params, handler, bufnr)
  if has_011 then
    return client:request(method, params, handler, bufnr)
  end
  return client.request(method, params, handler, bufnr)
end

local function client_cancel(client, id)
  if has_011 then
    return client:cancel_request(id)
  end
  return client.cancel_request(id)
end

--- Remove the drawn ghost text (the suggestion itself is kept for re-use while typing).
local function undraw(bufnr, state)
  if state.extmark then
    pcall(api.nvim_buf_del_extmark, bufnr, M.namespace, state.extmark)
  end
  state.extmark, state.pos, state.remainder = nil, nil, nil
end

--- Forget the suggestion and its drawing.
---@param bufnr? integer
function M.clear(bufnr)
  bufnr = bufnr or api.nvim_get_current_buf()
  local state = states[bufnr]
  if not state then
    return
  end
  undraw(bufnr, state)
  state.item, state.items, state.index = nil, nil, nil
end

local function cancel_pending(bufnr, state)
  if state.timer then
    state.timer:stop()
  end
  if state.request then
    local client = vim.lsp.get_client_by_id(state.request.client_id)
    if client then
      client_cancel(client, state.request.id)
    end
    state.request = nil
  end
end

--- Where the item's replacement ends now: the cursor, plus the original tail when it is
--- still right of the cursor.
local function replace_end(bufnr, item, row, col)
  if item.tail == "" then
    return row, col
  end
  local line = api.nvim_buf_get_lines(bufnr, row, row + 1, true)[1] or ""
  if line:sub(col + 1, col + #item.tail) == item.tail then
    return row, col + #item.tail
  end
  return row, col
end

--- Draw what is left of the current item at the cursor; false when it no longer fits
--- (the user typed something else, or moved before the item's start).
---@return boolean
local function draw(bufnr, state)
  local item = state.item
  if not item or api.nvim_get_current_buf() ~= bufnr then
    return false
  end
  local row, col = cursor()
  if row < item.start_row or (row == item.start_row and col < item.start_col) then
    return false
  end
  local typed = table.concat(api.nvim_buf_get_text(bufnr, item.start_row, item.start_col, row, col, {}), "\n")
  local remainder = text.remainder(typed, item.insert_text)
  if not remainder or remainder == "" then
    return false
  end
  local _, end_col = replace_end(bufnr, item, row, col)
  local line = api.nvim_buf_get_lines(bufnr, row, row + 1, true)[1] or ""
  local lines = text.display_lines(remainder, line:sub(col + 1, end_col))
  local virt_lines = {}
  for i = 2, #lines do
    virt_lines[#virt_lines + 1] = { { lines[i], options.hl_group } }
  end
  undraw(bufnr, state)
  state.extmark = api.nvim_buf_set_extmark(bufnr, M.namespace, row, col, {
    virt_text = { { lines[1], options.hl_group } },
    virt_text_pos = "inline",
    virt_lines = #virt_lines > 0 and virt_lines or nil,
    hl_mode = "combine",
    right_gravity = false,
  })
  state.pos = { row, col }
  state.tick = api.nvim_buf_get_changedtick(bufnr)
  state.remainder = remainder
  return true
end

local to_item

local function on_response(bufnr, state, seq, client, asked, err, result)
  if seq ~= state.seq then
    return -- a newer request is on its way
  end
  state.request = nil
  if err or not result or api.nvim_get_current_buf() ~= bufnr or api.nvim_get_mode().mode:sub(1, 1) ~= "i" then
    return
  end
  local row, col = cursor()
  if api.nvim_buf_get_changedtick(bufnr) ~= asked.tick or row ~= asked.row or col ~= asked.col then
    return -- stale: the text or the cursor changed while the server was generating
  end
  local items = {}
  for _, raw in ipairs(result.items or result) do
    items[#items + 1] = to_item(bufnr, client, raw, row, col)
  end
  state.items, state.index, state.item = items, 1, nil
  -- The first item that fits what is at the cursor now (normally the first one).
  for index, item in ipairs(items) do
    state.item, state.index = item, index
    if draw(bufnr, state) then
      return
    end
  end
  state.item, state.items, state.index = nil, nil, nil
end

--- An inline completion item of the server as a GhostItem; nil when it is unusable.
---@return codet5.GhostItem|nil
to_item = function(bufnr, client, raw, row, col)
  if type(raw) ~= "table" or type(raw.insertText) ~= "string" or raw.insertText == "" then
    return nil
  end
  local item = {
    client_id = client.id,
    start_row = row,
    start_col = col,
    insert_text = raw.insertText,
    tail = "",
    command = raw.command,
  }
  if raw.range then
    local start_line = api.nvim_buf_get_lines(bufnr, raw.range.start.line, raw.range.start.line + 1, false)[1]
    local end_line = api.nvim_buf_get_lines(bufnr, raw.range["end"].line, raw.range["end"].line + 1, false)[1]
    if not start_line or not end_line then
      return nil
    end
    local encoding = client.offset_encoding or "utf-16"
    item.start_row = raw.range.start.line
    item.start_col = text.byte_col(start_line, raw.range.start.character, encoding)
    local end_col = text.byte_col(end_line, raw.range["end"].character, encoding)
    if raw.range["end"].line == row and end_col > col then
      item.tail = end_line:sub(col + 1, end_col)
    end
  end
  return item
end

--- Ask the server for a suggestion at the cursor now.
---@param bufnr? integer
---@param trigger_kind? integer 1 = invoked, 2 = automatic
function M.request(bufnr, trigger_kind)
  bufnr = bufnr or api.nvim_get_current_buf()
  local state = state_of(bufnr)
  cancel_pending(bufnr, state)
  local client = client_for(bufnr)
  if not client or not options.enabled(bufnr) then
    return
  end
  local params = vim.lsp.util.make_position_params(0, client.offset_encoding or "utf-16")
  params.context = { triggerKind = trigger_kind or 2 }
  state.seq = state.seq + 1
  local seq = state.seq
  local row, col = cursor()
  local asked = { tick = api.nvim_buf_get_changedtick(bufnr), row = row, col = col }
  local ok, id = client_request(client, "textDocument/inlineCompletion", params, function(err, result)
    on_response(bufnr, state, seq, client, asked, err, result)
  end, bufnr)
  if ok and id then
    state.request = { client_id = client.id, id = id }
  end
end

--- Request after `debounce_ms` of quiet.
function M.schedule_request(bufnr)
  local state = state_of(bufnr)
  cancel_pending(bufnr, state)
  state.timer = state.timer or uv.new_timer()
  state.timer:start(options.debounce_ms, 0, vim.schedule_wrap(function()
    if api.nvim_buf_is_valid(bufnr) and api.nvim_get_current_buf() == bufnr
      and api.nvim_get_mode().mode:sub(1, 1) == "i" then
      M.request(bufnr, 2)
    end
  end))
end

---@param bufnr? integer
---@return boolean
function M.visible(bufnr)
  local state = states[bufnr or api.nvim_get_current_buf()]
  return state ~= nil and state.extmark ~= nil
end

--- The text still to be inserted by accept(), or nil when nothing is shown.
---@param bufnr? integer
---@return string|nil
function M.current(bufnr)
  local state = states[bufnr or api.nvim_get_current_buf()]
  return state and state.extmark and state.remainder or nil
end

local function execute_command(item, bufnr)
  if not item.command then
    return
  end
  local client = vim.lsp.get_client_by_id(item.client_id)
  if not client then
    return
  end
  local command = item.command
  client_request(client, "workspace/executeCommand", {
    command = command.command,
    arguments = command.arguments,
  }, function() end, bufnr)
end

--- Insert `insertion` at the cursor (replacing the item's tail when `replace_tail`) and
--- put the cursor after it.
local function insert_at_cursor(bufnr, insertion, replace_tail, item)
  local row, col = cursor()
  local end_row, end_col = row, col
  if replace_tail then
    end_row, end_col = replace_end(bufnr, item, row, col)
  end
  local lines = text.split_lines(insertion)
  api.nvim_buf_set_text(bufnr, row, col, end_row, end_col, lines)
  local new_row, new_col = text.end_position(row, col, lines)
  api.nvim_win_set_cursor(0, { new_row + 1, new_col })
end

--- Accept the whole suggestion; false when none is shown.
---@return boolean
function M.accept()
  local bufnr = api.nvim_get_current_buf()
  local state = states[bufnr]
  if not state or not state.extmark or not state.item then
    return false
  end
  local item, remainder = state.item, state.remainder
  cancel_pending(bufnr, state)
  M.clear(bufnr)
  insert_at_cursor(bufnr, remainder, true, item)
  execute_command(item, bufnr)
  return true
end

--- Accept the next word of the suggestion and keep showing the rest; false when none.
---@return boolean
function M.accept_word()
  local bufnr = api.nvim_get_current_buf()
  local state = states[bufnr]
  if not state or not state.extmark or not state.item then
    return false
  end
  local word = text.next_word(state.remainder)
  local whole = word == state.remainder
  cancel_pending(bufnr, state)
  if whole then
    return M.accept()
  end
  local item = state.item
  undraw(bufnr, state)
  insert_at_cursor(bufnr, word, false, item)
  draw(bufnr, state) -- the rest of the same item, now after the accepted word
  return true
end

--- Show the next (`delta` = 1) or previous (-1) item of the server's answer, skipping items
--- that no longer fit what was typed since; false when no suggestion is shown.
---@param delta integer
---@return boolean
function M.cycle(delta)
  local bufnr = api.nvim_get_current_buf()
  local state = states[bufnr]
  if not state or not state.extmark or not state.items then
    return false
  end
  local count, shown = #state.items, state.index
  for step = 1, count - 1 do
    local index = (shown - 1 + delta * step) % count + 1
    state.item, state.index = state.items[index], index
    if draw(bufnr, state) then
      return true
    end
  end
  state.item, state.index = state.items[shown], shown
  draw(bufnr, state)
  return true
end

--- Which item is shown and how many there are, e.g. {2, 3}; nil when nothing is shown.
---@param bufnr? integer
---@return integer[]|nil
function M.position(bufnr)
  local state = states[bufnr or api.nvim_get_current_buf()]
  if not state or not state.extmark or not state.items then
    return nil
  end
  return { state.index, #state.items }
end

--- Hide the suggestion; false when none is shown.
---@return boolean
function M.dismiss()
  local bufnr = api.nvim_get_current_buf()
  local state = states[bufnr]
  if not state or not state.extmark then
    return false
  end
  cancel_pending(bufnr, state)
  M.clear(bufnr)
  return true
end

--- Wire the autocommands of one buffer.
---@param bufnr integer
function M.attach(bufnr)
  local group = api.nvim_create_augroup("codet5.ghost." .. bufnr, { clear = true })
  local state = state_of(bufnr)
  api.nvim_create_autocmd({ "InsertEnter" }, {
    group = group,
    buffer = bufnr,
    callback = function()
      M.schedule_request(bufnr)
    end,
  })
  api.nvim_create_autocmd({ "TextChangedI", "TextChangedP" }, {
    group = group,
    buffer = bufnr,
    callback = function()
      -- Keep showing the same suggestion while what is typed matches it.
      if not draw(bufnr, state) then
        M.clear(bufnr)
      end
      M.schedule_request(bufnr)
    end,
  })
  api.nvim_create_autocmd("CursorMovedI", {
    group = group,
    buffer = bufnr,
    callback = function()
      if not state.extmark then
        return
      end
      local row, col = cursor()
      if state.pos and state.pos[1] == row and state.pos[2] == col then
        return -- moved by our own insert, already redrawn
      end
      if api.nvim_buf_get_changedtick(bufnr) ~= state.tick then
        return -- typing: TextChangedI redraws or clears
      end
      cancel_pending(bufnr, state)
      M.clear(bufnr)
    end,
  })
  api.nvim_create_autocmd({ "InsertLeave", "BufLeave" }, {
    group = group,
    buffer = bufnr,
    callback = function()
      cancel_pending(bufnr, state)
      M.clear(bufnr)
    end,
  })
  api.nvim_create_autocmd("BufWipeout", {
    group = group,
    buffer = bufnr,
    callback = function()
      cancel_pending(bufnr, state)
      if state.timer then
        state.timer:close()
      end
      states[bufnr] = nil
      pcall(api.nvim_del_augroup_by_id, group)
    end,
  })
end

---@param opts {debounce_ms?: integer, hl_group?: string, client_name?: string, enabled?: fun(bufnr: integer): boolean}
function M.configure(opts)
  options = vim.tbl_extend("force", options, opts or {})
end

return M
