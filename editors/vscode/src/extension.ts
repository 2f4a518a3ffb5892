/**
 * VS Code glue: starts `codet5-lsp serve`, wires inline completions (ghost text) and hovers
 * through vscode-languageclient, and shows `codet5/status` in the status bar.
 *
 * Everything that can be decided without VS Code lives in settings.ts and status.ts.
 */
import * as vscode from "vscode";
import {
  DidChangeConfigurationNotification,
  ExecuteCommandRequest,
  LanguageClient,
  LanguageClientOptions,
  RevealOutputChannelOn,
  ServerOptions,
  State,
} from "vscode-languageclient/node";
import {
  completionsEnabledFor,
  didChangeConfigurationParams,
  initializationOptionsFrom,
  RESTART_KEYS,
  serverCommandFrom,
  SettingGetter,
} from "./settings";
import {
  formatContext,
  parseContextReply,
  SHOW_CONTEXT_COMMAND,
  SHOW_CONTEXT_SERVER_COMMAND,
} from "./context";
import {
  LatencyWindow,
  parseStatus,
  STARTING,
  StatusParams,
  statusBarText,
  statusTooltip,
} from "./status";

const SECTION = "codet5";
const ACCEPTED_COMMAND = "codet5.accepted";

let client: LanguageClient | undefined;
let statusItem: vscode.StatusBarItem;
let output: vscode.LogOutputChannel;
let lastStatus: StatusParams = STARTING;
let latency = new LatencyWindow();
let acceptedCommand: vscode.Disposable | undefined;

function settingGetter(): SettingGetter {
  const config = vscode.workspace.getConfiguration(SECTION);
  return (key: string) => config.get(key);
}

function completionsEnabled(): boolean {
  return vscode.workspace.getConfiguration(SECTION).get<boolean>("enable", true);
}

function renderStatus(): void {
  const enabled = completionsEnabled();
  statusItem.text = statusBarText(lastStatus, enabled, latency.median());
  statusItem.tooltip = statusTooltip(lastStatus, enabled, latency);
  statusItem.backgroundColor = lastStatus.state === "error"
    ? new vscode.ThemeColor("statusBarItem.errorBackground")
    : undefined;
}

function onStatus(params: unknown): void {
  lastStatus = parseStatus(params);
  if (lastStatus.latencyMs !== undefined) {
    latency.add(lastStatus.latencyMs);
  }
  renderStatus();
}

function createClient(): LanguageClient {
  const get = settingGetter();
  const { command, args } = serverCommandFrom(get);
  const serverOptions: ServerOptions = {
    run: { command, args },
    debug: { command, args: [...args] },
  };
  const clientOptions: LanguageClientOptions = {
    documentSelector: [{ scheme: "file" }, { scheme: "untitled" }],
    initializationOptions: initializationOptionsFrom(get),
    outputChannel: output,
    revealOutputChannelOn: RevealOutputChannelOn.Never,
    middleware: {
      // Ask nothing of the server while turned off or in a disabled language: no ghost
      // text and no wasted generation. The server also honours disabledLanguages.
      provideInlineCompletionItems: (document, position, context, token, next) => {
        const options = initializationOptionsFrom(settingGetter());
        if (!completionsEnabledFor(document.languageId, completionsEnabled(), options)) {
          return null;
        }
        return next(document, position, context, token);
      },
      provideCompletionItem: (document, position, context, token, next) => {
        const options = initializationOptionsFrom(settingGetter());
        if (!completionsEnabledFor(document.languageId, completionsEnabled(), options)) {
          return null;
        }
        return next(document, position, context, token);
      },
    },
  };
  const result = new LanguageClient("codet5", "CodeT5", serverOptions, clientOptions);
  result.onNotification("codet5/status", onStatus);
  result.onDidChangeState((event) => {
    if (event.newState === State.Stopped) {
      lastStatus = { state: "error", message: "codet5-lsp is not running" };
      renderStatus();
    }
  });
  return result;
}

/** Inline items carry `command: codet5.accepted`, which VS Code runs on accept. The client
 * registers it when the server lists it in executeCommandProvider; otherwise forward it. */
function ensureAcceptedCommand(running: LanguageClient): void {
  acceptedCommand?.dispose();
  acceptedCommand = undefined;
  const serverCommands = running.initializeResult?.capabilities.executeCommandProvider?.commands ?? [];
  if (serverCommands.includes(ACCEPTED_COMMAND)) {
    return;
  }
  acceptedCommand = vscode.commands.registerCommand(ACCEPTED_COMMAND, (...args: unknown[]) =>
    client?.sendRequest(ExecuteCommandRequest.type, { command: ACCEPTED_COMMAND, arguments: args }),
  );
}

async function startClient(): Promise<void> {
  lastStatus = STARTING;
  latency = new LatencyWindow();
  renderStatus();
  client = createClient();
  try {
    await client.start();
    ensureAcceptedCommand(client);
  } catch (error) {
    lastStatus = { state: "error", message: `could not start codet5-lsp: ${String(error)}` };
    renderStatus();
    void vscode.window.showErrorMessage(
      `CodeT5: could not start the server (${String(error)}). Check the setting codet5.serverPath.`,
    );
  }
}

async function stopClient(): Promise<void> {
  const running = client;
  client = undefined;
  acceptedCommand?.dispose();
  acceptedCommand = undefined;
  if (running) {
    try {
      await running.stop();
    } catch (error) {
      output.warn(`stopping codet5-lsp: ${String(error)}`);
    }
  }
}

async function onConfigurationChanged(event: vscode.ConfigurationChangeEvent): Promise<void> {
  if (!event.affectsConfiguration(SECTION)) {
    return;
  }
  renderStatus();
  if (RESTART_KEYS.some((key) => event.affectsConfiguration(`${SECTION}.${key}`))) {
    await stopClient();
    await startClient();
    return;
  }
  if (client?.isRunning()) {
    await client.sendNotification(
      DidChangeConfigurationNotification.type,
      didChangeConfigurationParams(initializationOptionsFrom(settingGetter())),
    );
  }
}

/** "CodeT5: Show context": the server's codet5.showContext for the cursor, in a new tab. */
async function showContext(): Promise<void> {
  const editor = vscode.window.activeTextEditor;
  if (!editor || !client?.isRunning()) {
    void vscode.window.showWarningMessage("CodeT5: open a file with codet5-lsp running first.");
    return;
  }
  const convert = client.code2ProtocolConverter;
  const position = editor.selection.active;
  try {
    const reply = await client.sendRequest(ExecuteCommandRequest.type, {
      command: SHOW_CONTEXT_SERVER_COMMAND,
      arguments: [{ uri: convert.asUri(editor.document.uri), position: convert.asPosition(position) }],
    });
    const where = `${vscode.workspace.asRelativePath(editor.document.uri)}:${position.line + 1}:${position.character + 1}`;
    const content = formatContext(parseContextReply(reply), where);
    const view = await vscode.workspace.openTextDocument({ content, language: "plaintext" });
    await vscode.window.showTextDocument(view, { viewColumn: vscode.ViewColumn.Beside, preview: true });
  } catch (error) {
    void vscode.window.showErrorMessage(`CodeT5: could not show the context (${String(error)})`);
  }
}

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  output = vscode.window.createOutputChannel("CodeT5", { log: true });
  statusItem = vscode.window.createStatusBarItem(vscode.StatusBarAlignment.Right, 100);
  statusItem.command = "codet5.toggle";
  statusItem.show();
  context.subscriptions.push(
    output,
    statusItem,
    vscode.commands.registerCommand("codet5.toggle", async () => {
      const config = vscode.workspace.getConfiguration(SECTION);
      await config.update("enable", !completionsEnabled(), vscode.ConfigurationTarget.Global);
      renderStatus();
    }),
    vscode.commands.registerCommand("codet5.restart", async () => {
      await stopClient();
      await startClient();
    }),
    vscode.commands.registerCommand("codet5.showLog", () => output.show(true)),
    vscode.commands.registerCommand(SHOW_CONTEXT_COMMAND, showContext),
    vscode.workspace.onDidChangeConfiguration((event) => void onConfigurationChanged(event)),
    { dispose: () => void stopClient() },
  );
  await startClient();
}

export async function deactivate(): Promise<void> {
  await stopClient();
}
