import { test } from "node:test";
import assert from "node:assert/strict";
import { formatContext, parseContextReply } from "../context";

test("showContext reply parts are rendered in order with their kinds and token counts", () => {
  const parts = parseContextReply({
    parts: [
      { kind: "imports", tokens: 3, text: "import os\n\n" },
      { kind: "cursor_window", tokens: 5, text: "def f():\n    return os." },
    ],
  });
  assert.equal(
    formatContext(parts, "a.py:2:14"),
    "CodeT5 context at a.py:2:14: 2 parts, 8 tokens\n" +
      "----- imports (3 tokens) -----\nimport os\n\n" +
      "----- cursor_window (5 tokens) -----\ndef f():\n    return os.\n",
  );
});

test("a reply without parts is an error, not an empty view", () => {
  assert.throws(() => parseContextReply(null), /no context parts/);
  assert.throws(() => parseContextReply({ parts: [{ kind: "x" }] }), /malformed/);
});
