import { test } from "node:test";
import assert from "node:assert/strict";
import {
  formatLatency,
  LatencyWindow,
  parseStatus,
  statusBarText,
  statusTooltip,
} from "../status";

test("latency is shown in ms under a second and in s above", () => {
  assert.equal(formatLatency(84.6), "85 ms");
  assert.equal(formatLatency(0), "0 ms");
  assert.equal(formatLatency(1234), "1.2 s");
});

test("latency window keeps the last values and reports their median", () => {
  const window = new LatencyWindow(3);
  assert.equal(window.median(), undefined);
  window.add(100);
  window.add(10);
  assert.equal(window.median(), 55);
  window.add(30);
  window.add(20); // drops 100
  assert.equal(window.count, 3);
  assert.equal(window.median(), 20);
  window.add(Number.NaN);
  window.add(-5);
  assert.equal(window.count, 3);
});

test("status bar text follows the server state", () => {
  assert.equal(statusBarText({ state: "loading", message: "" }, true), "$(sync~spin) CodeT5 loading");
  assert.equal(statusBarText({ state: "ready", message: "" }, true, 42), "$(sparkle) CodeT5 42 ms");
  assert.equal(statusBarText({ state: "ready", message: "" }, true), "$(sparkle) CodeT5");
  assert.equal(statusBarText({ state: "error", message: "boom" }, true), "$(error) CodeT5");
  assert.equal(statusBarText({ state: "ready", message: "" }, false, 42), "$(circle-slash) CodeT5 off");
});

test("tooltip names model, device and median latency", () => {
  const window = new LatencyWindow();
  window.add(40);
  window.add(60);
  const tooltip = statusTooltip(
    { state: "ready", message: "model loaded", model: "labmodel", device: "cpu" }, true, window,
  );
  assert.match(tooltip, /^CodeT5: ready$/m);
  assert.match(tooltip, /^model loaded$/m);
  assert.match(tooltip, /^Model: labmodel \(cpu\)$/m);
  assert.match(tooltip, /^Latency: 50 ms \(median of last 2\)$/m);
});

test("malformed notifications become an error status instead of throwing", () => {
  assert.deepEqual(parseStatus(null), { state: "error", message: "malformed codet5/status notification" });
  assert.deepEqual(parseStatus({ state: "warming", message: 3, latencyMs: "7" }), { state: "error", message: "" });
  assert.deepEqual(
    parseStatus({ state: "ready", message: "ok", latencyMs: 12.5, model: "m", device: "cuda" }),
    { state: "ready", message: "ok", latencyMs: 12.5, model: "m", device: "cuda" },
  );
});

test("tooltip shows the summary model's state, including why it fell back", () => {
  const status = parseStatus({
    state: "ready", message: "", summaryModel: "Salesforce/codet5p-220m-bimodal",
    summaryState: "fallback", summaryMessage: "not downloaded; using the completion model",
  });
  assert.equal(status.summaryState, "fallback");
  const tip = statusTooltip(status, true);
  assert.match(tip, /Summaries: Salesforce\/codet5p-220m-bimodal: fallback \(not downloaded; using the completion model\)/);
  assert.doesNotMatch(statusTooltip(parseStatus({ state: "ready", message: "" }), true), /Summaries/);
  assert.equal(parseStatus({ state: "ready", message: "", summaryState: 3 }).summaryState, undefined);
});
