--- :checkhealth codet5 — server executable, its version, and the model/device it runs.
local M = {}

local health = vim.health

local function run(cmd, timeout_ms)
  local ok, obj = pcall(function()
    return vim.system(cmd, { text = true }):wait(timeout_ms)
  end)
  if not ok then
    return nil, tostring(obj)
  end
  return obj
end

local function first_line(s)
  return (s or ""):match("[^\n]+") or ""
end

function M.check()
  local codet5 = require("codet5")
  local config = codet5.config

  health.start("codet5: Neovim")
  if vim.fn.has("nvim-0.10") == 0 then
    health.error("Neovim 0.10 or newer is needed")
  elseif codet5.uses_native() then
    health.ok("ghost text drawn by vim.lsp.inline_completion (Neovim 0.12+)")
  else
    health.ok("ghost text drawn by codet5.ghost (Neovim " .. tostring(vim.version()) .. ")")
  end
  local keys = {}
  for action, lhs in pairs(config.keymaps or {}) do
    if lhs then
      keys[#keys + 1] = action .. "=" .. lhs
    end
  end
  table.sort(keys)
  health.info("insert-mode keys: " .. (#keys > 0 and table.concat(keys, ", ") or "none"))

  health.start("codet5: server")
  local exe = config.cmd[1]
  local path = vim.fn.exepath(exe)
  if path == "" then
    health.error(("server executable %q not found"):format(exe), {
      "pip install codet5-lsp, or set cmd = { '/path/to/codet5-lsp', 'serve' } in setup()",
    })
    return
  end
  health.ok("executable: " .. path)

  local version = run({ path, "--version" }, 15000)
  if version and version.code == 0 then
    health.ok("version: " .. first_line(version.stdout ~= "" and version.stdout or version.stderr))
  else
    health.warn("`" .. exe .. " --version` failed: " .. first_line(version and version.stderr or ""))
  end

  local status = codet5.status
  if status then
    local report = ("state: %s%s"):format(status.state, status.message and status.message ~= "" and (" (" .. status.message .. ")") or "")
    if status.state == "error" then
      health.error(report)
    else
      health.ok(report)
    end
    health.info("model: " .. tostring(status.model or config.init_options.model or "server default"))
    health.info("device: " .. tostring(status.device or config.init_options.device or "auto"))
    if status.latencyMs then
      health.info(("last latency: %d ms"):format(math.floor(status.latencyMs + 0.5)))
    end
    if status.summaryState then
      local summary = ("summaries: %s%s%s"):format(
        status.summaryModel and (status.summaryModel .. ": ") or "", status.summaryState,
        status.summaryMessage and status.summaryMessage ~= "" and (" (" .. status.summaryMessage .. ")") or "")
      if status.summaryState == "error" then
        health.error(summary)
      elseif status.summaryState == "fallback" or status.summaryState == "loading" then
        health.warn(summary)
      else
        health.ok(summary)
      end
    end
    return
  end

  -- No running server has reported yet: ask `codet5-lsp doctor`.
  health.info("no codet5/status from a running server yet; running `" .. exe .. " doctor`")
  local doctor = run({ path, "doctor" }, 60000)
  if doctor and doctor.code == 0 then
    for line in (doctor.stdout or ""):gmatch("[^\n]+") do
      health.info(line)
    end
  else
    health.warn("`" .. exe .. " doctor` failed: " .. first_line(doctor and (doctor.stderr or doctor.stdout) or ""))
  end
end

return M
