#!/usr/bin/env node
/**
 * Drives real VS Code (code-server in headless Chromium, through playwright-core) for
 * tests/test_vscode_real.py. The test owns the scenario and the assertions; this script only
 * does what a user does (keys, commands, mouse) and reads back what the editor shows, from the
 * DOM, never from a picture.
 *
 * Protocol: one JSON object per line on stdin, {"op": ..., ...}; one JSON line answered on
 * stdout for each, {"ok": true, ...} or {"ok": false, "error": "..."}. Logs go to stderr.
 *
 * Environment: CODET5_CHROMIUM (browser executable), CODET5_CODE_URL (code-server's address),
 * CODET5_CODE_PASSWORD (its password; read from the environment so that it is on no command
 * line), CODET5_PLAYWRIGHT (folder of playwright-core; default: resolved from NODE_PATH).
 */
"use strict";

const readline = require("readline");
const { chromium } = require(process.env.CODET5_PLAYWRIGHT || "playwright-core");

let browser;
let page;

function log(...args) {
  process.stderr.write(`drive.js: ${args.join(" ")}\n`);
}

/** Everything the test asserts on, read in one go in the page. */
function readState() {
  const nbsp = /\u00a0/g;
  const visible = (el) => {
    if (!el || !el.isConnected) return false;
    const style = getComputedStyle(el);
    if (style.display === "none" || style.visibility === "hidden") return false;
    const box = el.getBoundingClientRect();
    return box.width > 0 && box.height > 0;
  };
  const editor = document.querySelector(".editor-group-container.active .monaco-editor")
    || document.querySelector(".monaco-editor");
  const result = {
    title: document.title,
    lines: null,
    ghost: null,
    ghostLines: [],
    cursor: null,
    status: [],
    hovers: [],
    suggestWidget: false,
    notifications: [],
  };
  if (editor) {
    // The editor's text: its rendered lines in order, without the ghost text decorations
    // (VS Code draws the first ghost line inside the line's own DOM).
    const rows = [...editor.querySelectorAll(".view-lines .view-line")]
      .map((row) => ({ top: parseFloat(row.style.top) || 0, row }))
      .sort((a, b) => a.top - b.top);
    const ghostParts = [];
    result.lines = rows.map(({ row }) => {
      const copy = row.cloneNode(true);
      for (const ghost of row.querySelectorAll("[class*='ghost-text']")) {
        ghostParts.push(ghost.textContent.replace(nbsp, " "));
      }
      for (const ghost of copy.querySelectorAll("[class*='ghost-text']")) {
        ghost.remove();
      }
      return copy.textContent.replace(nbsp, " ");
    });
    // Further lines of a multi-line suggestion live in a view zone below the line.
    const zoneLines = [...editor.querySelectorAll(".view-zones .ghost-text .view-line, .view-zones .ghost-text > div")]
      .filter((el) => el.closest(".view-zones"))
      .map((el) => ({ top: el.getBoundingClientRect().top, text: el.textContent.replace(nbsp, " ") }))
      .sort((a, b) => a.top - b.top);
    const seen = new Set();
    for (const line of zoneLines) {
      const key = `${line.top}:${line.text}`;
      if (!seen.has(key)) {
        seen.add(key);
        result.ghostLines.push(line.text);
      }
    }
    result.ghost = ghostParts.length ? ghostParts.join("") : null;
    result.suggestWidget = [...editor.querySelectorAll(".suggest-widget")].some(visible);
  }
  // "Ln 20, Col 12" of the status bar: the cursor as the editor reports it.
  for (const item of document.querySelectorAll(".statusbar-item")) {
    const text = item.textContent.replace(nbsp, " ").trim();
    const match = /^Ln (\d+), Col (\d+)/.exec(text);
    if (match) {
      result.cursor = [Number(match[1]), Number(match[2])];
    }
    if (text) {
      const icon = item.querySelector(".codicon");
      const iconName = icon ? [...icon.classList].find((c) => c.startsWith("codicon-") && c !== "codicon-modifier-spin") : null;
      result.status.push({ text, icon: iconName || null, id: item.id || null,
        tooltip: item.getAttribute("aria-label") || null });
    }
  }
  for (const hover of document.querySelectorAll(".monaco-hover")) {
    if (visible(hover) && !hover.closest(".suggest-widget")) {
      const text = hover.innerText.replace(nbsp, " ").trim();
      if (text) result.hovers.push(text);
    }
  }
  for (const toast of document.querySelectorAll(".notification-list-item")) {
    result.notifications.push(toast.innerText.trim());
  }
  return result;
}

async function open({ url, width = 1280, height = 720 }) {
  browser = await chromium.launch({
    executablePath: process.env.CODET5_CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
  });
  const context = await browser.newContext({ viewport: { width, height } });
  page = await context.newPage();
  page.on("pageerror", (error) => log("page error:", String(error)));
  await page.goto(url || process.env.CODET5_CODE_URL, { waitUntil: "domcontentloaded" });
  const password = page.locator("input[name=password]");
  if (await password.count()) {
    await password.fill(process.env.CODET5_CODE_PASSWORD || "");
    await Promise.all([page.waitForNavigation({ waitUntil: "domcontentloaded" }),
      page.locator("input[type=submit], button[type=submit], .submit").first().click()]);
  }
  await page.waitForSelector(".monaco-workbench .part.statusbar", { timeout: 120000 });
  return {};
}

/** Opens `name` through Quick Open (Ctrl+P), as a user would. */
async function openFile({ name }) {
  await page.keyboard.press("Control+P");
  await page.waitForSelector(".quick-input-widget input", { state: "visible" });
  await page.keyboard.type(name);
  await page.waitForSelector(`.quick-input-list .monaco-list-row[aria-label*="${name}"]`, { timeout: 30000 });
  await page.keyboard.press("Enter");
  await page.waitForSelector(".editor-group-container.active .monaco-editor .view-lines", { timeout: 30000 });
  await page.locator(".editor-group-container.active .monaco-editor .view-lines").click();
  return {};
}

/** Runs a command through the Command Palette (F1), as a user would. */
async function command({ title }) {
  await page.keyboard.press("F1");
  await page.waitForSelector(".quick-input-widget input", { state: "visible" });
  await page.keyboard.type(title);
  const row = page.locator(".quick-input-list .monaco-list-row", { hasText: title }).first();
  await row.waitFor({ timeout: 30000 });
  await page.keyboard.press("Enter");
  await page.waitForSelector(".quick-input-widget", { state: "hidden" });
  return {};
}

/** Moves the mouse onto the first occurrence of `word` in line `line` (1-based). */
async function hoverWord({ line, word }) {
  const box = await page.evaluate(({ line, word }) => {
    const editor = document.querySelector(".editor-group-container.active .monaco-editor");
    const rows = [...editor.querySelectorAll(".view-lines .view-line")]
      .sort((a, b) => (parseFloat(a.style.top) || 0) - (parseFloat(b.style.top) || 0));
    const row = rows[line - 1];
    if (!row) return null;
    const walker = document.createTreeWalker(row, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      const at = node.textContent.indexOf(word);
      if (at >= 0) {
        const range = document.createRange();
        range.setStart(node, at);
        range.setEnd(node, at + word.length);
        const rect = range.getBoundingClientRect();
        return { x: rect.left + rect.width / 2, y: rect.top + rect.height / 2 };
      }
    }
    return null;
  }, { line, word });
  if (!box) throw new Error(`${word} not found on line ${line}`);
  await page.mouse.move(box.x - 40, box.y + 40);
  await page.mouse.move(box.x, box.y, { steps: 4 });
  return {};
}

/** Moves the mouse onto the status bar item whose text contains `text` (its tooltip shows). */
async function hoverStatus({ text }) {
  const item = page.locator(".statusbar-item", { hasText: text }).first();
  const box = await item.boundingBox();
  if (!box) throw new Error(`no status bar item with ${text}`);
  await page.mouse.move(box.x + box.width / 2, box.y - 30);
  await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2, { steps: 4 });
  return {};
}

const ops = {
  hoverStatus,
  open,
  openFile,
  command,
  hoverWord,
  state: async () => ({ state: await page.evaluate(readState) }),
  type: async ({ text, delay = 30 }) => { await page.keyboard.type(text, { delay }); return {}; },
  insertText: async ({ text }) => { await page.keyboard.insertText(text); return {}; },
  press: async ({ key }) => { await page.keyboard.press(key); return {}; },
  mouseAway: async () => { await page.mouse.move(5, 5); return {}; },
  screenshot: async ({ path }) => { await page.screenshot({ path }); return { path }; },
  close: async () => { if (browser) await browser.close(); browser = undefined; return {}; },
};

async function main() {
  const lines = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
  for await (const line of lines) {
    if (!line.trim()) continue;
    let answer;
    try {
      const request = JSON.parse(line);
      const op = ops[request.op];
      if (!op) throw new Error(`unknown op ${request.op}`);
      answer = { ok: true, ...(await op(request)) };
    } catch (error) {
      answer = { ok: false, error: String(error && error.stack || error) };
    }
    process.stdout.write(`${JSON.stringify(answer)}\n`);
  }
  if (browser) await browser.close();
}

main().catch((error) => {
  log(String(error && error.stack || error));
  process.exit(1);
});
