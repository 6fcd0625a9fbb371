"""``RuntimeOptions``: one declaration per runtime flag, the same help in every command,
and the same bounds for the command line and the library."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from translator.cli import cli

from translator.errors import GantoolError
from translator.runtime.options import RuntimeOptions

RUNTIME_COMMANDS = ("apply", "translate", "webcam", "serve")
FIELDS = {f.name: f for f in dataclasses.fields(RuntimeOptions)}
#: The modules that define the runtime's commands.
COMMAND_SOURCES = [Path(__file__).resolve().parents[1] / "cli" / name
                   for name in ("runtime.py", "serve.py")]


def _offered(command: str) -> dict[str, click.Option]:
    params = cli.commands[command].params
    return {p.name: p for p in params if isinstance(p, click.Option) and p.name in FIELDS}


@pytest.mark.parametrize("command", RUNTIME_COMMANDS)
def test_each_runtime_flag_has_the_dataclass_help_and_default(command):
    offered = _offered(command)
    assert {"provider", "size", "input_range"} & set(offered) or "faces" in offered
    for name, option in offered.items():
        f = FIELDS[name]
        assert option.help == f.metadata["help"], f"{command} --{name}"
        assert option.default == f.default, f"{command} --{name}"


def test_a_flag_means_the_same_in_every_command_that_offers_it():
    seen: dict[str, dict[str, tuple]] = {}
    for command in RUNTIME_COMMANDS:
        for name, option in _offered(command).items():
            seen.setdefault(name, {})[command] = (option.help, option.default, tuple(option.opts),
                                                  tuple(option.secondary_opts), repr(option.type))
    shared = {name: by_cmd for name, by_cmd in seen.items() if len(by_cmd) > 1}
    assert {"provider", "size", "input_range", "faces", "side_by_side"} <= set(shared)
    for name, by_cmd in shared.items():
        assert len(set(by_cmd.values())) == 1, (name, by_cmd)


def test_runtime_flags_are_declared_only_in_the_dataclass():
    """No command spells a runtime flag itself: a copied option block would bring its own
    (drifting) help text back."""
    flags = {"--" + name.replace("_", "-") for name in FIELDS}
    for path in COMMAND_SOURCES:
        text = path.read_text(encoding="utf-8")
        for flag in flags:
            assert f'"{flag}"' not in text and f"'{flag}'" not in text, f"{flag} in {path.name}"


def test_flag_bounds_hold_for_library_callers_too():
    with pytest.raises(GantoolError, match="--size must be between 8 and 2048"):
        RuntimeOptions(size=4096)
    with pytest.raises(GantoolError, match="--batch-size must be at least 1"):
        RuntimeOptions(batch_size=0)
    with pytest.raises(GantoolError, match="--input-range"):
        RuntimeOptions(input_range="0,inf")
    assert RuntimeOptions(size=2048, input_range="0,1").size == 2048


@pytest.mark.parametrize("args", [["--size", "4096"], ["--input-range", "1,nan"],
                                  ["--batch-size", "0"]])
def test_bad_runtime_flags_are_one_line(tmp_path, args):
    image = tmp_path / "a.png"
    image.write_bytes(b"")
    result = CliRunner().invoke(cli, ["apply", "-m", str(tmp_path / "m.onnx"), str(image), *args])
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "Error" in result.output and args[0] in result.output


def test_detector_choice_follows_the_face_model():
    assert RuntimeOptions().detector_choice() == (None, {})  # the first of DEFAULT_DETECTORS
    assert RuntimeOptions(face_model="y.onnx").detector_choice() == ("yunet", {"model": "y.onnx"})
    assert RuntimeOptions(detector="haar", face_model="c.xml").detector_choice() == (
        "haar", {"cascade": "c.xml"})
