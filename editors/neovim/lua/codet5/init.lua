--- codet5.nvim: CodeT5+ ghost-text completions and hover summaries from `codet5-lsp`.
---
--- require("codet5").setup({ cmd = {...}, filetypes = {...}, init_options = {...}, keymaps = {...} })
--- starts the server with vim.lsp.start for the configured filetypes. Neovim 0.12+ draws
--- suggestions with vim.lsp.inline_completion; 0.10/0.11 use codet5.ghost.
local M = {}

local api = vim.api

---@class codet5.Keymaps
---@field accept string|false
---@field accept_word string|false
---@field dismiss string|false
---@field next string|false show the server's next suggestion (when it sent several)
---@field prev string|false show the previous one

---@class codet5.Config
---@field cmd string[]
---@field filetypes string[]
---@field init_options table
---@field root_markers string[]
---@field debounce_ms integer
---@field enabled boolean
---@field native boolean|nil nil: use vim.lsp.inline_completion where it exists (0.12+)
---@field keymaps codet5.Keymaps
---@field log_file string|false
---@field hl_group string
---@field on_attach? fun(client: vim.lsp.Client, bufnr: integer)
M.defaults = {
  cmd = { "codet5-lsp", "serve" },
  filetypes = {
    "python", "java", "javascript", "javascriptreact", "typescript", "typescriptreact",
    "go", "ruby", "php", "c", "cpp", "cs", "rust",
  },
  init_options = {},
  root_markers = { ".git", "pyproject.toml", "setup.py", "package.json", "go.mod", "Cargo.toml" },
  debounce_ms = 50,
  enabled = true,
  native = nil,
  keymaps = { accept = "<C-l>", accept_word = "<M-l>", dismiss = "<C-]>", next = "<M-]>", prev = "<M-[>" },
  log_file = vim.fn.stdpath("log") .. "/codet5-lsp.log",
  hl_group = "CodeT5Ghost",
  on_attach = nil,
}

M.name = "codet5"

---@type codet5.Config
M.config = vim.deepcopy(M.defaults)

--- Last `codet5/status` params from the server ({state, message, latencyMs?, model?, device?}).
---@type table|nil
M.status = nil

local group = nil

-- Client methods are called with ":" from 0.11 on; "." is deprecated there.
local has_011 = vim.fn.has("nvim-0.11") == 1

local function call(client, method, ...)
  if has_011 then
    return client[method](client, ...)
  end
  return client[method](...)
end

--- LSP languageIds where they differ from Neovim filetypes.
local LANGUAGE_IDS = { cs = "csharp", sh = "shellscript" }

--- Whether Neovim draws inline completions itself (0.12+ and not turned off by `native`).
---@return boolean
function M.uses_native()
  if M.config.native == false then
    return false
  end
  return vim.lsp.inline_completion ~= nil and vim.lsp.inline_completion.enable ~= nil
end

local function ghost()
  return require("codet5.ghost")
end

--- The server command with `--log-file` added unless the user gave one or turned it off.
---@param config codet5.Config
---@return string[]
function M.server_cmd(config)
  local cmd = vim.deepcopy(config.cmd)
  if config.log_file and not vim.tbl_contains(cmd, "--log-file") then
    vim.list_extend(cmd, { "--log-file", config.log_file })
  end
  return cmd
end

local function on_status(_, result)
  if type(result) ~= "table" then
    return
  end
  M.status = result
  api.nvim_exec_autocmds("User", { pattern = "CodeT5Status", modeline = false, data = result })
end

--- Short text for a statusline: "CodeT5 ready 42ms", "CodeT5 loading", "CodeT5 off".
---@return string
function M.statusline()
  if not M.config.enabled then
    return "CodeT5 off"
  end
  local status = M.status
  if not status then
    return ""
  end
  local text = "CodeT5 " .. tostring(status.state)
  if status.state == "ready" and type(status.latencyMs) == "number" then
    text = text .. (" %dms"):format(math.floor(status.latencyMs + 0.5))
  end
  return text
end

local function client_capabilities()
  local capabilities = vim.lsp.protocol.make_client_capabilities()
  capabilities.textDocument = capabilities.textDocument or {}
  capabilities.textDocument.inlineCompletion = capabilities.textDocument.inlineCompletion
    or { dynamicRegistration = false }
  return capabilities
end

local function feed(key)
  api.nvim_feedkeys(vim.keycode(key), "n", false)
end

--- Accept the whole suggestion; false when there was none.
---@return boolean
function M.accept()
  if M.uses_native() then
    return vim.lsp.inline_completion.get({ bufnr = 0 }) == true
  end
  return ghost().accept()
end

--- Accept the next word of the suggestion (own renderer only); false when there was none.
---@return boolean
function M.accept_word()
  if M.uses_native() then
    return false
  end
  return ghost().accept_word()
end

--- Hide the suggestion; false when there was none.
---@return boolean
function M.dismiss()
  if M.uses_native() then
    return false
  end
  return ghost().dismiss()
end

--- The suggestion text still to be inserted (own renderer), or nil.
---@return string|nil
function M.current()
  if M.uses_native() then
    return nil
  end
  return ghost().current()
end

--- Show the next (`delta` = 1) or previous (-1) suggestion; false when none is shown.
---@param delta integer
---@return boolean
function M.cycle(delta)
  if M.uses_native() then
    local select = vim.lsp.inline_completion.select
    return select ~= nil and pcall(select, { bufnr = 0, count = delta }) or false
  end
  return ghost().cycle(delta)
end

--- Ask the server for a suggestion at the cursor now (as when a key finds none shown).
function M.suggest()
  if not M.config.enabled then
    return
  end
  if M.uses_native() then
    -- 0.12 asks on its own while typing; a key press just redraws what it has.
    return
  end
  ghost().request(api.nvim_get_current_buf(), 1)
end

local function set_keymaps(bufnr)
  local actions = {
    accept = M.accept,
    accept_word = M.accept_word,
    dismiss = M.dismiss,
    next = function()
      return M.cycle(1)
    end,
    prev = function()
      return M.cycle(-1)
    end,
  }
  -- With no suggestion shown, these ask for one where the key itself would be junk.
  local asks = { accept = true, next = true, prev = true }
  for action, lhs in pairs(M.config.keymaps or {}) do
    local fn = actions[action]
    if lhs and fn then
      local falls_back = require("codet5.text").insert_fallback_ok(lhs)
      vim.keymap.set("i", lhs, function()
        if fn() then
          return
        end
        -- Without a suggestion the key does what it would do without this plugin, unless
        -- that puts a control character into the buffer or leaves insert mode.
        if falls_back then
          feed(lhs)
        elseif asks[action] then
          M.suggest()
        end
      end, { buffer = bufnr, desc = "CodeT5: " .. action:gsub("_", " ") })
    end
  end
end

local function on_attach(client, bufnr)
  if M.uses_native() then
    vim.lsp.inline_completion.enable(M.config.enabled, { bufnr = bufnr })
  else
    ghost().attach(bufnr)
  end
  set_keymaps(bufnr)
  if M.config.on_attach then
    M.config.on_attach(client, bufnr)
  end
end

--- Start (or re-use) the server for `bufnr`.
---@param bufnr? integer
---@return integer|nil client_id
function M.start(bufnr)
  bufnr = bufnr or api.nvim_get_current_buf()
  if vim.bo[bufnr].buftype ~= "" then
    return nil
  end
  local config = M.config
  local root = vim.fs.root(bufnr, config.root_markers) or vim.fn.getcwd()
  return vim.lsp.start({
    name = M.name,
    cmd = M.server_cmd(config),
    root_dir = root,
    init_options = config.init_options,
    capabilities = client_capabilities(),
    handlers = { ["codet5/status"] = on_status },
    get_language_id = function(_, filetype)
      return LANGUAGE_IDS[filetype] or filetype
    end,
    on_attach = on_attach,
  }, {
    bufnr = bufnr,
    -- One server (one loaded model) for the whole editor session.
    reuse_client = function(client, conf)
      return client.name == conf.name
    end,
  })
end

---@return vim.lsp.Client[]
function M.clients()
  local get = vim.lsp.get_clients or vim.lsp.get_active_clients
  return get({ name = M.name })
end

--- Send new settings to the running server (`workspace/didChangeConfiguration`).
---@param init_options table camelCase keys as in initializationOptions
function M.configure(init_options)
  M.config.init_options = vim.tbl_extend("force", M.config.init_options, init_options)
  for _, client in ipairs(M.clients()) do
    call(client, "notify", "workspace/didChangeConfiguration", { settings = { codet5 = M.config.init_options } })
  end
end

--- Turn suggestions on or off (the server keeps running, so hovers keep working).
---@param enabled? boolean default: flip
function M.toggle(enabled)
  if enabled == nil then
    enabled = not M.config.enabled
  end
  M.config.enabled = enabled
  if M.uses_native() then
    vim.lsp.inline_completion.enable(enabled)
  elseif not enabled then
    for _, bufnr in ipairs(api.nvim_list_bufs()) do
      ghost().clear(bufnr)
    end
  end
  vim.notify("CodeT5 suggestions " .. (enabled and "on" or "off"), vim.log.levels.INFO)
end

--- Stop the server and start it again for every loaded buffer of a configured filetype.
function M.restart()
  for _, client in ipairs(M.clients()) do
    call(client, "stop", true)
  end
  M.status = nil
  vim.defer_fn(function()
    for _, bufnr in ipairs(api.nvim_list_bufs()) do
      if api.nvim_buf_is_loaded(bufnr) and vim.tbl_contains(M.config.filetypes, vim.bo[bufnr].filetype) then
        M.start(bufnr)
      end
    end
  end, 200)
end

--- `:CodeT5Context`: what the model sees for a completion at the cursor (the server's
--- codet5.showContext), in a scratch split.
function M.show_context()
  local bufnr = api.nvim_get_current_buf()
  local client = nil
  for _, candidate in ipairs(M.clients()) do
    if vim.lsp.buf_is_attached(bufnr, candidate.id) then
      client = candidate
    end
  end
  if not client then
    vim.notify("CodeT5: codet5-lsp is not attached to this buffer", vim.log.levels.WARN)
    return
  end
  local params = vim.lsp.util.make_position_params(0, client.offset_encoding or "utf-16")
  local cursor = api.nvim_win_get_cursor(0)
  local where = ("%s:%d:%d"):format(vim.fn.expand("%:."), cursor[1], cursor[2] + 1)
  local request = {
    command = "codet5.showContext",
    arguments = { { uri = params.textDocument.uri, position = params.position } },
  }
  call(client, "request", "workspace/executeCommand", request, function(err, result)
    if err or type(result) ~= "table" or type(result.parts) ~= "table" then
      local why = err and (err.message or vim.inspect(err)) or "no context parts in the reply"
      vim.notify("CodeT5: could not show the context: " .. why, vim.log.levels.ERROR)
      return
    end
    local lines = require("codet5.text").context_lines(result.parts, where)
    vim.cmd("botright new")
    local view = api.nvim_get_current_buf()
    vim.bo[view].buftype = "nofile"
    vim.bo[view].bufhidden = "wipe"
    vim.bo[view].swapfile = false
    api.nvim_buf_set_lines(view, 0, -1, false, lines)
    vim.bo[view].modifiable = false
    M.context_buffer = view
  end, bufnr)
end

--- Open the server's log file.
function M.open_log()
  if not M.config.log_file then
    vim.notify("CodeT5: log_file is off; see :LspLog", vim.log.levels.WARN)
    return
  end
  vim.cmd.split(vim.fn.fnameescape(M.config.log_file))
end

--- The ghost-text colour, unless the user or the colour scheme set `hl_group`. Its own
--- grey and italics, with cterm values: linked to Comment, a 256-colour terminal without
--- 'termguicolors' drew it like real code.
function M.define_highlight()
  api.nvim_set_hl(0, M.config.hl_group, {
    default = true,
    fg = "#8a8a8a",
    ctermfg = 245,
    italic = true,
    cterm = { italic = true },
  })
end

---@param opts? table see M.defaults
function M.setup(opts)
  M.config = vim.tbl_deep_extend("force", vim.deepcopy(M.defaults), opts or {})
  if opts and opts.filetypes then
    M.config.filetypes = opts.filetypes -- a list replaces, it does not merge by index
  end
  if opts and opts.cmd then
    M.config.cmd = opts.cmd
  end
  M.define_highlight()
  ghost().configure({
    debounce_ms = M.config.debounce_ms,
    hl_group = M.config.hl_group,
    client_name = M.name,
    enabled = function()
      return M.config.enabled
    end,
  })
  group = api.nvim_create_augroup("codet5", { clear = true })
  -- A colour scheme clears highlight groups; define ours again (`default`: theirs win).
  api.nvim_create_autocmd("ColorScheme", { group = group, callback = M.define_highlight })
  api.nvim_create_autocmd("FileType", {
    group = group,
    pattern = M.config.filetypes,
    callback = function(args)
      M.start(args.buf)
    end,
  })
  -- Set up lazily (e.g. by lazy.nvim on an event): attach to buffers already open.
  for _, bufnr in ipairs(api.nvim_list_bufs()) do
    if api.nvim_buf_is_loaded(bufnr) and vim.tbl_contains(M.config.filetypes, vim.bo[bufnr].filetype) then
      M.start(bufnr)
    end
  end
end

return M
