-- Headless Neovim as a real LSP client: open each file, attach `dltspec lsp`, wait for its
-- diagnostics and write them as JSON. Works with Neovim 0.7 (vim.lsp.start_client) and later
-- (vim.lsp.start). Configured through the environment:
--   DLT_CMD    JSON list: the server command     DLT_FILES  JSON list: the files to open
--   DLT_OUT    where to write the JSON result
local cmd = vim.fn.json_decode(os.getenv("DLT_CMD"))
local files = vim.fn.json_decode(os.getenv("DLT_FILES"))
local out = os.getenv("DLT_OUT")

local published = {}
local function on_publish(err, result, ctx, config)
  local name = vim.uri_to_fname(result.uri)
  published[name] = (published[name] or 0) + 1
  return vim.lsp.diagnostic.on_publish_diagnostics(err, result, ctx, config)
end

local config = {
  name = "dltspec",
  cmd = cmd,
  root_dir = vim.fn.getcwd(),
  handlers = { ["textDocument/publishDiagnostics"] = on_publish },
}

local client_id = nil
local function attach(buf)
  if vim.lsp.start then
    client_id = vim.lsp.start(config, { bufnr = buf })
  else
    client_id = client_id or vim.lsp.start_client(config)
    vim.lsp.buf_attach_client(buf, client_id)
  end
end

local v = vim.version()
local report = { nvim = string.format("%d.%d.%d", v.major, v.minor, v.patch), files = {} }
for _, file in ipairs(files) do
  vim.cmd("edit " .. vim.fn.fnameescape(file))
  local buf = vim.api.nvim_get_current_buf()
  attach(buf)
  local name = vim.api.nvim_buf_get_name(buf)
  local got = vim.wait(30000, function() return (published[name] or 0) > 0 end, 20)
  local diagnostics = {}
  for _, d in ipairs(vim.diagnostic.get(buf)) do
    local lsp = (d.user_data or {}).lsp or {}
    table.insert(diagnostics, {
      lnum = d.lnum, col = d.col, end_lnum = d.end_lnum, end_col = d.end_col,
      code = d.code or lsp.code, source = d.source or lsp.source, severity = d.severity, message = d.message,
    })
  end
  report.files[file] = { published = got, diagnostics = diagnostics }
end

local handle = io.open(out, "w")
handle:write(vim.fn.json_encode(report))
handle:close()
vim.lsp.stop_client(client_id)
vim.cmd("qall!")
