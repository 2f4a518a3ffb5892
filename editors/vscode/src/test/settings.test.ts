import { test } from "node:test";
import assert from "node:assert/strict";
import {
  completionsEnabledFor,
  didChangeConfigurationParams,
  initializationOptionsFrom,
  serverCommandFrom,
} from "../settings";

function getter(values: Record<string, unknown>) {
  return (key: string) => values[key];
}

test("settings map to camelCase initializationOptions", () => {
  const options = initializationOptionsFrom(getter({
    model: "/models/labmodel",
    revision: "main",
    device: "cpu",
    computeType: "int8",
    completionMode: "infill",
    maxNewTokens: 32,
    debounceMs: 0,
    alternatives: 3,
    disabledLanguages: ["markdown", "plaintext", "markdown"],
    summaryModel: "Salesforce/codet5p-220m-bimodal",
    summariesEnabled: false,
    tokenHealing: false,
    logLevel: "debug",
    enable: true,
    serverPath: "/usr/bin/codet5-lsp",
  }));
  assert.deepEqual(options, {
    model: "/models/labmodel",
    revision: "main",
    device: "cpu",
    computeType: "int8",
    completionMode: "infill",
    maxNewTokens: 32,
    debounceMs: 0,
    alternatives: 3,
    disabledLanguages: ["markdown", "plaintext"],
    summaryModel: "Salesforce/codet5p-220m-bimodal",
    summariesEnabled: false,
    tokenHealing: false,
    logLevel: "debug",
  });
});

test("values of the wrong type or outside their enum are dropped, not sent", () => {
  const options = initializationOptionsFrom(getter({
    model: "",
    revision: null,
    device: "tpu",
    computeType: 8,
    completionMode: "fim",
    maxNewTokens: 1.5,
    debounceMs: -1,
    alternatives: 2.5,
    disabledLanguages: ["python", 3, ""],
    summariesEnabled: "yes",
    tokenHealing: 0,
  }));
  assert.deepEqual(options, { disabledLanguages: ["python"] });
});

test("unset settings give an empty object so that server defaults apply", () => {
  assert.deepEqual(initializationOptionsFrom(() => undefined), {});
});

test("didChangeConfiguration nests the options under settings.codet5", () => {
  assert.deepEqual(didChangeConfigurationParams({ device: "cpu" }), {
    settings: { codet5: { device: "cpu" } },
  });
});

test("completions are off when toggled off or for a disabled language", () => {
  const options = { disabledLanguages: ["markdown"] };
  assert.equal(completionsEnabledFor("python", true, options), true);
  assert.equal(completionsEnabledFor("markdown", true, options), false);
  assert.equal(completionsEnabledFor("python", false, options), false);
  assert.equal(completionsEnabledFor("python", true, {}), true);
});

test("server command is `<serverPath> serve <args>` with a PATH fallback", () => {
  assert.deepEqual(serverCommandFrom(getter({ serverPath: "/opt/bin/codet5-lsp", serverArgs: ["--log-file", "/tmp/l"] })), {
    command: "/opt/bin/codet5-lsp",
    args: ["serve", "--log-file", "/tmp/l"],
  });
  assert.deepEqual(serverCommandFrom(getter({ serverPath: "  " })), { command: "codet5-lsp", args: ["serve"] });
});
