-- :MsalToken and :MsalSignOut. The commands only name the plugin's module:
-- lua-msal loads when one is first used, so the plugin costs nothing at
-- startup.
if vim.g.loaded_msal_example then return end
vim.g.loaded_msal_example = 1

vim.api.nvim_create_user_command("MsalToken", function() require("msal_example").token() end,
  { desc = "Get an access token (from the cache, else by device code) and yank it" })
vim.api.nvim_create_user_command("MsalSignOut", function() require("msal_example").sign_out() end,
  { desc = "Remove the signed-in accounts from the token cache" })
