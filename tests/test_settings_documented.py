"""The settings users read about are the ones `Settings` (server/settings.py) has.

Three places document them: README.md's Settings table (the reference: every field), the VS
Code extension's package.json (contributes.configuration: the settings UI, a chosen subset,
each forwarded by editors/vscode/src/settings.ts), and the Neovim plugin (its README: an
`init_options` example with defaults, and a pointer to the reference, since the plugin passes
`init_options` through as it is). A setting renamed, added or removed on one side only, or a
default that drifted, fails here.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any, get_args, get_type_hints

import pytest

from codet5_lsp.server.settings import Settings

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
PACKAGE_JSON = REPO / "editors" / "vscode" / "package.json"
SETTINGS_TS = REPO / "editors" / "vscode" / "src" / "settings.ts"
NEOVIM_README = REPO / "editors" / "neovim" / "README.md"
NEOVIM_LUA = REPO / "editors" / "neovim" / "lua" / "codet5"

# VS Code settings the extension reads itself and never sends to the server.
VSCODE_CLIENT_ONLY = {
    "enable": "turns the extension's requests on and off (codet5.toggle); the server keeps "
    "serving hovers",
    "serverPath": "the executable the extension starts",
    "serverArgs": "extra command-line arguments of `codet5-lsp serve`",
}
# Settings fields the VS Code settings UI leaves out (README documents them; `serverArgs`
# carries the CLI flags of those that have one), and why.
_TUNING = "a tuning knob for benchmarks and experts, documented in README.md only"
NOT_IN_VSCODE = {
    "decoder_marker": _TUNING,
    "max_context_tokens": _TUNING,
    "max_suffix_tokens": _TUNING,
    "max_multiline_tokens": _TUNING,
    "speculation": _TUNING,
    "speculation_depth": _TUNING,
    "speculation_source": _TUNING,
    "summary_max_tokens": _TUNING,
    "summary_prefetch_delay_ms": _TUNING,
    "debounce_max_ms": _TUNING,
    "request_timeout_ms": _TUNING,
    "max_file_bytes": _TUNING,
    "intra_threads": _TUNING,
    "cache_dir": "a per-machine path: `--cache-dir` in codet5.serverArgs",
    "offline": "per machine: `--offline` in codet5.serverArgs",
    "backend": "a team deployment's choice (docs/team.md): `--backend` in codet5.serverArgs",
    "backend_token_file": "a per-machine secret's path: `--backend-token-file` in "
    "codet5.serverArgs",
}
# Settings fields README.md need not list, and why (none: README is the reference).
NOT_IN_README: dict[str, str] = {}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


FIELDS = {_camel(f.name): f for f in dataclasses.fields(Settings)}
HINTS = get_type_hints(Settings)


def _default(camel: str) -> Any:
    return FIELDS[camel].default


def _readme_rows() -> list[tuple[list[str], list[str]]]:
    """(names, default cells) of each row of README's Settings table."""
    section = README.read_text().split("\n## Settings\n", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        if not line.startswith("| `"):
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        names = re.findall(r"`(\w+)`", cells[0])
        defaults = [d.strip() for d in cells[1].split(" / ")] if cells[1] else []
        rows.append((names, defaults))
    return rows


def _parse_default(text: str) -> Any:
    text = text.replace("(auto)", "").strip().strip("`")
    if text in ("–", "-", ""):
        return None
    if text in ("true", "false"):
        return text == "true"
    if text == "[]":
        return ()
    if text.isdigit():
        return int(text)
    return text


def test_readme_documents_every_setting_by_its_name():
    documented = {name for names, _ in _readme_rows() for name in names}
    assert documented, "no rows found under README's Settings heading"
    unknown = documented - FIELDS.keys()
    assert not unknown, f"README documents settings that Settings does not have: {unknown}"
    missing = {
        f.name for camel, f in FIELDS.items() if camel not in documented
    } - NOT_IN_README.keys()
    assert not missing, f"Settings fields README does not document: {missing}"
    assert not {_camel(n) for n in NOT_IN_README} & documented, "stale NOT_IN_README entry"


def test_readme_defaults_are_the_settings_defaults():
    compared = 0
    for names, defaults in _readme_rows():
        if len(defaults) != len(names):
            continue  # a row that states no default per name
        for name, text in zip(names, defaults):
            if name not in FIELDS:
                continue  # reported by the test above
            stated = _parse_default(text)
            actual = _default(name)
            if stated is None and actual in (None, 0, ()):
                continue  # "–": unset
            assert stated == actual, f"README: {name} defaults to {text!r}, Settings to {actual!r}"
            compared += 1
    assert compared >= 15, f"only {compared} defaults compared: has the table changed shape?"


def _vscode_properties() -> dict[str, dict[str, Any]]:
    config = json.loads(PACKAGE_JSON.read_text())["contributes"]["configuration"]
    props = config["properties"]
    assert all(key.startswith("codet5.") for key in props)
    return {key.removeprefix("codet5."): value for key, value in props.items()}


def test_vscode_settings_are_settings_with_the_same_defaults_and_values():
    props = _vscode_properties()
    server_keys = props.keys() - VSCODE_CLIENT_ONLY.keys()
    unknown = server_keys - FIELDS.keys()
    assert not unknown, f"package.json offers settings that Settings does not have: {unknown}"
    for key in sorted(server_keys):
        spec, default = props[key], _default(key)
        expected = list(default) if isinstance(default, tuple) else default
        assert spec["default"] == expected, (
            f"codet5.{key}: package.json default {spec['default']!r}, Settings {default!r}"
        )
        allowed = get_args(HINTS[FIELDS[key].name])
        if "enum" in spec:
            assert tuple(spec["enum"]) == allowed, f"codet5.{key}: enum differs from Settings"


def test_every_user_facing_setting_is_in_vscode_or_left_out_for_a_reason():
    props = _vscode_properties()
    offered = {FIELDS[k].name for k in props.keys() - VSCODE_CLIENT_ONLY.keys()}
    left_out = {f.name for f in dataclasses.fields(Settings)} - offered
    assert left_out == NOT_IN_VSCODE.keys(), (
        f"not in package.json and not explained in NOT_IN_VSCODE: "
        f"{left_out - NOT_IN_VSCODE.keys()}; offered now, so drop from NOT_IN_VSCODE: "
        f"{NOT_IN_VSCODE.keys() - left_out}"
    )
    assert not VSCODE_CLIENT_ONLY.keys() & FIELDS.keys()


def test_the_extension_declares_every_setting_it_offers():
    source = SETTINGS_TS.read_text()
    interface = source[source.index("export interface InitializationOptions") :]
    interface = interface[: interface.index("}")]
    declared = set(re.findall(r"^\s*(\w+)\??:", interface, re.M))
    server_keys = _vscode_properties().keys() - VSCODE_CLIENT_ONLY.keys()
    assert declared == server_keys, f"InitializationOptions differs: {declared ^ server_keys}"


def _sample(spec: dict[str, Any]) -> Any:
    """A valid value of a package.json setting other than its default."""
    if "enum" in spec:
        return spec["enum"][-1]
    kind = spec["type"][0] if isinstance(spec["type"], list) else spec["type"]
    if kind == "boolean":
        return not spec["default"]
    if kind == "integer":
        return (spec["default"] or 0) + 1
    return {"string": "models/other", "array": ["markdown"]}[kind]


def test_the_extension_forwards_every_setting_it_offers():
    """Every setting of the settings UI reaches the server's Settings through settings.ts
    (run with node: its compiled out/settings.js); one it dropped would do nothing."""
    compiled = SETTINGS_TS.parents[1] / "out" / "settings.js"
    if shutil.which("node") is None or not compiled.is_file():
        pytest.skip("needs node and the compiled extension (editors/ci-setup.sh)")
    props = _vscode_properties()
    values = {key: _sample(spec) for key, spec in props.items()}
    script = (
        "const s = require(process.argv[1]); const v = JSON.parse(process.argv[2]);"
        "console.log(JSON.stringify(s.initializationOptionsFrom((k) => v[k])));"
    )
    out = subprocess.run(
        ["node", "-e", script, str(compiled), json.dumps(values)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    sent = json.loads(out)
    server_keys = props.keys() - VSCODE_CLIENT_ONLY.keys()
    assert sent.keys() == server_keys, (
        f"offered but not sent: {server_keys - sent.keys()}; "
        f"sent but not offered: {sent.keys() - server_keys}"
    )
    merged = Settings().merged(sent)
    for key in server_keys:
        expected = values[key]
        expected = tuple(expected) if isinstance(expected, list) else expected
        assert getattr(merged, FIELDS[key].name) == expected, key


def _neovim_init_option_keys() -> dict[str, str]:
    """camelCase keys given to init_options / configure() in the Neovim README and plugin,
    with the Lua value text."""
    found: dict[str, str] = {}
    readme = NEOVIM_README.read_text()
    for match in re.finditer(
        r"init_options = \{(.*?)\n?\s*\}[,)]|configure\(\{(.*?)\}\)", readme, re.S
    ):
        block = match.group(1) or match.group(2)
        for key, value in re.findall(r"(\w+)\s*=\s*(\{[^}]*\}|\"[^\"]*\"|[\w.]+)", block):
            found[key] = value
    lua = "\n".join(p.read_text() for p in NEOVIM_LUA.glob("*.lua"))
    for key in re.findall(r"init_options\.(\w+)", lua):
        found.setdefault(key, "")
    return found


def test_neovim_init_options_are_settings():
    keys = _neovim_init_option_keys()
    assert {"model", "device", "computeType", "debounceMs", "alternatives"} <= keys.keys(), keys
    unknown = keys.keys() - FIELDS.keys()
    assert not unknown, f"the Neovim plugin documents settings Settings does not have: {unknown}"


def test_neovim_commented_defaults_are_the_settings_defaults():
    """The Configuration example lists defaults in comments (`-- maxNewTokens = 48, ...`)."""
    readme = NEOVIM_README.read_text()
    block = readme[readme.index("init_options = {                         --") :]
    block = block[: block.index("\n  },")]
    comments = "\n".join(line.split("--", 1)[1] for line in block.splitlines()[1:])
    compared = 0
    for key, value in re.findall(r"(\w+)\s*=\s*(\"[^\"]*\"|true|false|\d+)", comments):
        stated: Any = json.loads(value)
        assert stated == _default(key), (
            f"Neovim README: {key} = {value}, Settings: {_default(key)!r}"
        )
        compared += 1
    assert compared >= 6, comments


def test_neovim_readme_points_at_the_full_list():
    readme = NEOVIM_README.read_text()
    assert "(../../README.md#settings)" in readme
    assert "\n## Settings\n" in README.read_text()


@pytest.mark.parametrize("camel", sorted(FIELDS))
def test_each_documented_name_is_accepted_by_the_server(camel):
    """camelCase as documented reaches the field (Settings.merged)."""
    field = FIELDS[camel]
    assert Settings().merged({camel: None}) == Settings()  # known keys: null leaves defaults
    hint = HINTS[field.name]
    sample = {bool: True, int: 1, str: "x"}.get(hint)
    if sample is None:
        args = get_args(hint)
        sample = args[0] if args and all(isinstance(a, str) for a in args) else None
        if hint == tuple[str, ...]:
            sample = ["markdown"]
        if sample is None and str in args:
            sample = "x"
    assert sample is not None, f"no sample value for {field.name}: {hint}"
    merged = Settings().merged({camel: sample})
    expected = tuple(sample) if isinstance(sample, list) else sample
    assert getattr(merged, field.name) == expected
