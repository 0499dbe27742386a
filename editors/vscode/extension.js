// The smallest VS Code client for `dltspec lsp`: start it over stdio for .dlt documents.
const vscode = require("vscode");
const { LanguageClient } = require("vscode-languageclient/node");

let client;

function activate() {
  const [command, ...args] = vscode.workspace.getConfiguration("dltspec").get("command", ["dltspec", "lsp"]);
  client = new LanguageClient("dltspec", "dltspec", { command, args }, {
    documentSelector: [{ scheme: "file", language: "dlt" }, { scheme: "untitled", language: "dlt" }],
  });
  return client.start();
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate };
