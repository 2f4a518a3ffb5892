-- User commands only; nothing starts until require("codet5").setup() is called.
if vim.g.loaded_codet5 then
  return
end
vim.g.loaded_codet5 = true

local function codet5()
  return require("codet5")
end

vim.api.nvim_create_user_command("CodeT5Toggle", function()
  codet5().toggle()
end, { desc = "Turn CodeT5 suggestions on or off" })
vim.api.nvim_create_user_command("CodeT5Restart", function()
  codet5().restart()
end, { desc = "Restart the codet5-lsp server" })
vim.api.nvim_create_user_command("CodeT5Log", function()
  codet5().open_log()
end, { desc = "Open the codet5-lsp log" })
vim.api.nvim_create_user_command("CodeT5Status", function()
  local status = codet5().status
  vim.notify(status and vim.inspect(status) or "CodeT5: no status from the server yet")
end, { desc = "Show the last codet5/status" })
vim.api.nvim_create_user_command("CodeT5Context", function()
  codet5().show_context()
end, { desc = "Show what the model sees for a completion at the cursor" })
