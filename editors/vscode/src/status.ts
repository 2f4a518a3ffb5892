/**
 * Pure formatting of the `codet5/status` notification for the status-bar item.
 * No `vscode` import: unit-tested with node's test runner.
 */

export type ServerState = "loading" | "ready" | "error" | "disabled";

/** Params of the server -> client notification `codet5/status`. */
export interface StatusParams {
  state: ServerState;
  message: string;
  latencyMs?: number;
  model?: string;
  device?: string;
  /** The hover-summary model and its state (loading / ready / error / fallback / off). */
  summaryModel?: string;
  summaryState?: string;
  summaryMessage?: string;
}

/** What the status bar shows before the server has said anything. */
export const STARTING: StatusParams = { state: "loading", message: "Starting codet5-lsp" };

/** Keeps the last few completion latencies so that the bar shows a steady figure (median),
 * not the jitter of the very last request. */
export class LatencyWindow {
  private readonly values: number[] = [];

  constructor(private readonly size = 20) {}

  add(ms: number): void {
    if (!Number.isFinite(ms) || ms < 0) {
      return;
    }
    this.values.push(ms);
    if (this.values.length > this.size) {
      this.values.shift();
    }
  }

  /** Median of the kept values, or undefined when there are none. */
  median(): number | undefined {
    if (this.values.length === 0) {
      return undefined;
    }
    const sorted = [...this.values].sort((a, b) => a - b);
    const mid = Math.floor(sorted.length / 2);
    return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
  }

  get count(): number {
    return this.values.length;
  }
}

/** "85 ms" under a second, "1.2 s" above. */
export function formatLatency(ms: number): string {
  if (ms < 1000) {
    return `${Math.round(ms)} ms`;
  }
  return `${(ms / 1000).toFixed(1)} s`;
}

const ICONS: Record<ServerState, string> = {
  loading: "$(sync~spin)",
  ready: "$(sparkle)",
  error: "$(error)",
  disabled: "$(circle-slash)",
};

/** Status-bar text: an icon, the name and, when ready, the recent latency. */
export function statusBarText(status: StatusParams, enabled: boolean, latencyMs?: number): string {
  if (!enabled) {
    return `${ICONS.disabled} CodeT5 off`;
  }
  const icon = ICONS[status.state] ?? ICONS.error;
  if (status.state === "ready" && latencyMs !== undefined) {
    return `${icon} CodeT5 ${formatLatency(latencyMs)}`;
  }
  if (status.state === "loading") {
    return `${icon} CodeT5 loading`;
  }
  return `${icon} CodeT5`;
}

/** Tooltip: state, message, model and device, one per line. */
export function statusTooltip(status: StatusParams, enabled: boolean, latency?: LatencyWindow): string {
  const lines = [`CodeT5: ${enabled ? status.state : "completions turned off"}`];
  if (status.message) {
    lines.push(status.message);
  }
  if (status.model) {
    lines.push(`Model: ${status.model}${status.device ? ` (${status.device})` : ""}`);
  } else if (status.device) {
    lines.push(`Device: ${status.device}`);
  }
  if (status.summaryState) {
    const name = status.summaryModel ? `${status.summaryModel}: ` : "";
    const why = status.summaryMessage ? ` (${status.summaryMessage})` : "";
    lines.push(`Summaries: ${name}${status.summaryState}${why}`);
  }
  const median = latency?.median();
  if (median !== undefined && latency) {
    lines.push(`Latency: ${formatLatency(median)} (median of last ${latency.count})`);
  }
  lines.push("Click to turn completions on or off.");
  return lines.join("\n");
}

/** Parse untrusted notification params; anything unusable becomes an error status. */
export function parseStatus(params: unknown): StatusParams {
  if (typeof params !== "object" || params === null) {
    return { state: "error", message: "malformed codet5/status notification" };
  }
  const p = params as Record<string, unknown>;
  const state = p.state;
  const known: ServerState[] = ["loading", "ready", "error", "disabled"];
  const result: StatusParams = {
    state: typeof state === "string" && (known as string[]).includes(state) ? (state as ServerState) : "error",
    message: typeof p.message === "string" ? p.message : "",
  };
  if (typeof p.latencyMs === "number" && Number.isFinite(p.latencyMs)) {
    result.latencyMs = p.latencyMs;
  }
  if (typeof p.model === "string") {
    result.model = p.model;
  }
  if (typeof p.device === "string") {
    result.device = p.device;
  }
  for (const key of ["summaryModel", "summaryState", "summaryMessage"] as const) {
    const value = p[key];
    if (typeof value === "string" && value) {
      result[key] = value;
    }
  }
  return result;
}
