/**
 * "CodeT5: Show context": what the model sees for the cursor, from the server's
 * `codet5.showContext` command (`{"parts": [{"kind", "tokens", "text"}, ...]}`), rendered
 * as plain text with one header line per part. Pure, so it is tested without VS Code.
 */

export const SHOW_CONTEXT_SERVER_COMMAND = "codet5.showContext";
/** The VS Code command id; the server's own id is registered by vscode-languageclient. */
export const SHOW_CONTEXT_COMMAND = "codet5.showContextAtCursor";

export interface ContextPart {
  kind: string;
  tokens: number;
  text: string;
}

/** The parts of a showContext reply; throws on anything else (an older server). */
export function parseContextReply(reply: unknown): ContextPart[] {
  const parts = (reply as { parts?: unknown } | null)?.parts;
  if (!Array.isArray(parts)) {
    throw new Error("the server sent no context parts (is codet5-lsp up to date?)");
  }
  return parts.map((part) => {
    const p = part as Partial<ContextPart>;
    if (typeof p?.kind !== "string" || typeof p.text !== "string" || typeof p.tokens !== "number") {
      throw new Error("the server sent a malformed context part");
    }
    return { kind: p.kind, tokens: p.tokens, text: p.text };
  });
}

/** One header line per part (kind and tokens), then the part's text exactly as sent. */
export function formatContext(parts: ContextPart[], where: string): string {
  const total = parts.reduce((sum, part) => sum + part.tokens, 0);
  const lines = [`CodeT5 context at ${where}: ${parts.length} parts, ${total} tokens`];
  for (const part of parts) {
    lines.push(`----- ${part.kind} (${part.tokens} tokens) -----`);
    lines.push(part.text.endsWith("\n") ? part.text.slice(0, -1) : part.text);
  }
  return lines.join("\n") + "\n";
}
