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
  keymaps = { accept = "<C-l>", accept_word = "<M-l>", dismiss = "<C-]>" },
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

local function set_keymaps(bufnr)
  local actions = { accept = M.accept, accept_word = M.accept_word, dismiss = M.dismiss }
  for action, lhs in pairs(M.config.keymaps or {}) do
    local fn = actions[action]
    if lhs and fn then
      vim.keymap.set("i", lhs, function()
        -- Without a suggestion the key does what it would do without this plugin.
        if not fn() then
          feed(lhs)
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

--- Open the server's log file.
function M.open_log()
  if not M.config.log_file then
    vim.notify("CodeT5: log_file is off; see :LspLog", vim.log.levels.WARN)
    return
  end
  vim.cmd.split(vim.fn.fnameescape(M.config.log_file))
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
  api.nvim_set_hl(0, M.config.hl_group, { link = "Comment", default = true })
  ghost().configure({
    debounce_ms = M.config.debounce_ms,
    hl_group = M.config.hl_group,
    client_name = M.name,
    enabled = function()
      return M.config.enabled
    end,
  })
  group = api.nvim_create_augroup("codet5", { clear = true })
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
