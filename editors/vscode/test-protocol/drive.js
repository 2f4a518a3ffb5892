#!/usr/bin/env node
"use strict";
/**
 * Drives `codet5-lsp serve` the way VS Code's language client does, and prints one JSON
 * object with what came back; tests/test_vscode_protocol.py asserts on it.
 *
 * Usage: node drive.js '<server command as JSON list>' <python file> <line> <character> <hoverLine> <hoverCharacter>
 * (0-based positions, utf-16 characters). Exits non-zero only when the protocol itself fails.
 */
const { spawn } = require("node:child_process");
const fs = require("node:fs");
const path = require("node:path");
const { pathToFileURL } = require("node:url");
const {
  createProtocolConnection,
  StreamMessageReader,
  StreamMessageWriter,
} = require("vscode-languageserver-protocol/node");
const {
  CancellationTokenSource,
  DidChangeConfigurationNotification,
  DidChangeTextDocumentNotification,
  DidOpenTextDocumentNotification,
  ExecuteCommandRequest,
  ExitNotification,
  HoverRequest,
  InitializedNotification,
  InitializeRequest,
  InlineCompletionRequest,
  InlineCompletionTriggerKind,
  ResponseError,
  ShutdownRequest,
} = require("vscode-languageserver-protocol");
const { vscodeClientCapabilities } = require("./capabilities");

const READY_TIMEOUT_MS = Number(process.env.CODET5_READY_TIMEOUT_MS || 240000);

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function describeError(error) {
  if (error instanceof ResponseError) {
    return { code: error.code, message: error.message };
  }
  return { code: null, message: String(error && error.message ? error.message : error) };
}

async function main() {
  const [cmdJson, file, line, character, hoverLine, hoverCharacter] = process.argv.slice(2);
  const cmd = JSON.parse(cmdJson);
  const server = spawn(cmd[0], cmd.slice(1), { stdio: ["pipe", "pipe", "pipe"] });
  let stderr = "";
  server.stderr.on("data", (chunk) => {
    stderr = (stderr + chunk.toString()).slice(-4000);
  });
  let finished = false;
  server.on("exit", (code, signal) => {
    if (!finished) {
      process.stderr.write(`drive.js: codet5-lsp exited early (code ${code}, signal ${signal}):\n${stderr}\n`);
      process.exit(3);
    }
  });
  const connection = createProtocolConnection(
    new StreamMessageReader(server.stdout),
    new StreamMessageWriter(server.stdin),
  );
  const statuses = [];
  connection.onNotification("codet5/status", (params) => statuses.push(params));
  connection.onNotification("window/logMessage", () => {});
  connection.onNotification("window/showMessage", () => {});
  // Requests VS Code answers for any server.
  connection.onRequest("client/registerCapability", () => null);
  connection.onRequest("client/unregisterCapability", () => null);
  connection.onRequest("window/workDoneProgress/create", () => null);
  connection.onRequest("workspace/configuration", (params) => params.items.map(() => null));
  connection.listen();

  const uri = pathToFileURL(path.resolve(file)).toString();
  const text = fs.readFileSync(file, "utf8");
  const result = { statuses, stderr: "" };

  const init = await connection.sendRequest(InitializeRequest.type, {
    processId: process.pid,
    clientInfo: { name: "Visual Studio Code", version: "1.96.0" },
    locale: "en",
    rootPath: path.dirname(path.resolve(file)),
    rootUri: pathToFileURL(path.dirname(path.resolve(file))).toString(),
    capabilities: vscodeClientCapabilities,
    initializationOptions: { debounceMs: 50, summariesEnabled: true, disabledLanguages: ["markdown"] },
    trace: "off",
    workspaceFolders: [{ uri: pathToFileURL(path.dirname(path.resolve(file))).toString(), name: "ws" }],
  });
  result.capabilities = init.capabilities;
  result.serverInfo = init.serverInfo ?? null;
  await connection.sendNotification(InitializedNotification.type, {});
  await connection.sendNotification(DidOpenTextDocumentNotification.type, {
    textDocument: { uri, languageId: "python", version: 1, text },
  });

  const position = { line: Number(line), character: Number(character) };
  const inlineParams = {
    textDocument: { uri },
    position,
    context: { triggerKind: InlineCompletionTriggerKind.Automatic },
  };

  // The model loads (and is converted on first use) in the background: ask until it answers.
  const deadline = Date.now() + READY_TIMEOUT_MS;
  let inline = null;
  while (Date.now() < deadline) {
    try {
      inline = await connection.sendRequest(InlineCompletionRequest.type, inlineParams);
    } catch (error) {
      result.inlineError = describeError(error);
      break;
    }
    const items = Array.isArray(inline) ? inline : inline?.items ?? [];
    if (items.length > 0) {
      break;
    }
    await sleep(500);
  }
  result.inline = inline;
  result.readyMs = READY_TIMEOUT_MS - (deadline - Date.now());

  const items = Array.isArray(inline) ? inline : inline?.items ?? [];
  if (items[0]?.command) {
    try {
      result.accepted = await connection.sendRequest(ExecuteCommandRequest.type, {
        command: items[0].command.command,
        arguments: items[0].command.arguments,
      });
      result.acceptedOk = true;
    } catch (error) {
      result.acceptedOk = false;
      result.acceptedError = describeError(error);
    }
  }

  try {
    result.hover = await connection.sendRequest(HoverRequest.type, {
      textDocument: { uri },
      position: { line: Number(hoverLine), character: Number(hoverCharacter) },
    });
  } catch (error) {
    result.hoverError = describeError(error);
  }

  // Cancellation, as VS Code does on every keystroke. A longer server debounce (a setting
  // change, as VS Code sends it) and a line the server has not seen make sure the request is
  // still pending when $/cancelRequest (sent right after it: the token is already
  // cancelled) arrives, so the answer must be RequestCancelled, not a result.
  await connection.sendNotification(DidChangeConfigurationNotification.type, {
    settings: { codet5: { debounceMs: 400 } },
  });
  const fresh = "    first_line = ";
  await connection.sendNotification(DidChangeTextDocumentNotification.type, {
    textDocument: { uri, version: 2 },
    contentChanges: [{
      range: { start: { line: position.line, character: 0 }, end: { line: position.line, character: 0 } },
      text: fresh + "\n",
    }],
  });
  const freshParams = { ...inlineParams, position: { line: position.line, character: fresh.length } };
  const source = new CancellationTokenSource();
  source.cancel();
  try {
    result.cancelled = {
      result: await connection.sendRequest(InlineCompletionRequest.type, freshParams, source.token),
    };
  } catch (error) {
    result.cancelled = { error: describeError(error) };
  }

  // The server keeps serving after a cancellation.
  try {
    result.afterCancel = await connection.sendRequest(InlineCompletionRequest.type, freshParams);
  } catch (error) {
    result.afterCancelError = describeError(error);
  }

  finished = true;
  const exited = new Promise((resolve) => {
    const timer = setTimeout(() => {
      server.kill();
      resolve(null);
    }, 10000);
    server.on("exit", (code) => {
      clearTimeout(timer);
      resolve(code);
    });
  });
  await connection.sendRequest(ShutdownRequest.type);
  await connection.sendNotification(ExitNotification.type);
  const exitCode = await exited;
  result.exitCode = exitCode;
  result.stderr = stderr;
  connection.dispose();
  process.stdout.write(JSON.stringify(result) + "\n");
}

main().catch((error) => {
  process.stderr.write(`drive.js: ${error && error.stack ? error.stack : error}\n`);
  process.exit(2);
});
