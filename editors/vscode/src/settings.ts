/**
 * Pure mapping from the `codet5.*` VS Code settings to the server's initializationOptions.
 *
 * Kept free of the `vscode` module so that it can be unit-tested with node's test runner
 * without launching VS Code; `extension.ts` passes in a getter over the real configuration.
 */

export type Device = "auto" | "cpu" | "cuda";
export type CompletionMode = "auto" | "decoder" | "seq2seq" | "infill";
export type LogLevel = "debug" | "info" | "warning" | "error";

/** The flat, camelCase object the server reads from initializationOptions and
 * `workspace/didChangeConfiguration` `{settings: {codet5: ...}}`. */
export interface InitializationOptions {
  model?: string;
  revision?: string | null;
  device?: Device;
  computeType?: string;
  completionMode?: CompletionMode;
  maxNewTokens?: number;
  debounceMs?: number;
  alternatives?: number;
  disabledLanguages?: string[];
  summaryModel?: string;
  summariesEnabled?: boolean;
  tokenHealing?: boolean;
  logLevel?: LogLevel;
}

/** Reads one key of the `codet5` section; returns undefined when it is unset. */
export type SettingGetter = (key: string) => unknown;

const STRING_KEYS = ["model", "summaryModel"] as const;
const ENUM_KEYS: Record<string, readonly string[]> = {
  device: ["auto", "cpu", "cuda"],
  computeType: [
    "auto", "default", "int8", "int8_float32", "int8_float16", "int8_bfloat16",
    "float16", "bfloat16", "float32",
  ],
  completionMode: ["auto", "decoder", "seq2seq", "infill"],
  logLevel: ["debug", "info", "warning", "error"],
};
const INTEGER_KEYS = ["maxNewTokens", "debounceMs", "alternatives"] as const;

/**
 * Build initializationOptions from settings, dropping values of the wrong type or outside
 * their enum: the server rejects a whole update that holds one bad value, so one typo in
 * settings.json must not take every other setting down with it.
 */
export function initializationOptionsFrom(get: SettingGetter): InitializationOptions {
  const options: Record<string, unknown> = {};
  for (const key of STRING_KEYS) {
    const value = get(key);
    if (typeof value === "string" && value.trim() !== "") {
      options[key] = value.trim();
    }
  }
  const revision = get("revision");
  if (typeof revision === "string" && revision.trim() !== "") {
    options.revision = revision.trim();
  }
  for (const [key, allowed] of Object.entries(ENUM_KEYS)) {
    const value = get(key);
    if (typeof value === "string" && allowed.includes(value)) {
      options[key] = value;
    }
  }
  for (const key of INTEGER_KEYS) {
    const value = get(key);
    if (typeof value === "number" && Number.isInteger(value) && value >= 0) {
      options[key] = value;
    }
  }
  const disabled = get("disabledLanguages");
  if (Array.isArray(disabled)) {
    options.disabledLanguages = [...new Set(
      disabled.filter((v): v is string => typeof v === "string" && v.trim() !== "")
        .map((v) => v.trim()),
    )];
  }
  for (const key of ["summariesEnabled", "tokenHealing"] as const) {
    const value = get(key);
    if (typeof value === "boolean") {
      options[key] = value;
    }
  }
  return options as InitializationOptions;
}

/** The payload of `workspace/didChangeConfiguration` that the server expects. */
export function didChangeConfigurationParams(options: InitializationOptions): {
  settings: { codet5: InitializationOptions };
} {
  return { settings: { codet5: options } };
}

/** Whether completions should be requested for a document of `languageId`. */
export function completionsEnabledFor(
  languageId: string,
  enabled: boolean,
  options: InitializationOptions,
): boolean {
  return enabled && !(options.disabledLanguages ?? []).includes(languageId);
}

export interface ServerCommand {
  command: string;
  args: string[];
}

/** The process to start: `<serverPath> serve <extra args>`; an empty path falls back to PATH. */
export function serverCommandFrom(get: SettingGetter): ServerCommand {
  const path = get("serverPath");
  const extra = get("serverArgs");
  return {
    command: typeof path === "string" && path.trim() !== "" ? path.trim() : "codet5-lsp",
    args: ["serve", ...(Array.isArray(extra) ? extra.filter((a): a is string => typeof a === "string") : [])],
  };
}

/** Settings whose change needs a new server process rather than a configuration update. */
export const RESTART_KEYS = ["serverPath", "serverArgs"] as const;
