"""``gantool export onnx`` and ``gantool inspect``: every registered model exports to one
self-contained ONNX file that matches PyTorch in onnxruntime and describes itself; bad
input fails with one line and leaves no file behind."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import types
from pathlib import Path

import export_helpers
import numpy as np
import onnx
import pytest
import torch
from export_helpers import SIZE, model_names

import translator
from translator import onnx_metadata as meta
from translator.errors import GantoolError
from translator.specs import ExportRequest

#: The session fixture of trained runs (every registered model, cached), made visible here.
export_runs = export_helpers.export_runs


def invoke(args: list[str]):
    from click.testing import CliRunner
    from translator.cli import cli

    return CliRunner().invoke(cli, args, catch_exceptions=False)


def ort_session(path: Path):
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def parity(session, module: torch.nn.Module, inputs: list[torch.Tensor]) -> float:
    """Largest |onnxruntime - PyTorch| over inputs (computed here, not by the exporter)."""
    name = session.get_inputs()[0].name
    worst = 0.0
    for x in inputs:
        with torch.no_grad():
            want = module(x).numpy()
        got = session.run(None, {name: x.numpy()})[0]
        assert got.shape == want.shape
        worst = max(worst, float(np.abs(got - want).max()))
    return worst


def files_in(folder: Path) -> list[str]:
    """Every entry, hidden temporaries included."""
    return sorted(p.name for p in folder.rglob("*")) if folder.exists() else []


# -- every registered model ----------------------------------------------------------------
@pytest.mark.parametrize("name", model_names())
def test_export_every_model_matches_pytorch_and_describes_itself(name, export_runs, tmp_path):
    from translator.training.runs import load_model

    run = export_runs(name)
    model, rc, step = load_model(run)
    gens = model.generators()
    kind = next(iter(gens.values())).kind
    # One direction per model keeps the test short; b2a checks that domains swap (a2b for
    # one-way models). Both directions (the default) are exported in the fp16 test.
    way = "b2a" if "b2a" in gens else "a2b"
    direction = ["--direction", way] if kind == "translation" else []
    out = tmp_path / "out"
    result = invoke(["export", "onnx", str(run), "-o", str(out), *direction])
    assert result.exit_code == 0, result.output
    expected = {f"{name}-{way}.onnx": way} if kind == "translation" else {f"{name}.onnx": "generator"}
    assert files_in(out) == sorted(expected)  # one file each: no .data, no temporaries
    # The exporter's chatter is silenced: exactly one line per file, with its error.
    lines = result.output.splitlines()
    assert len(lines) == len(expected) and all(ln.startswith("Wrote ") for ln in lines), lines
    for line in lines:
        found = re.search(r"max error ([0-9.e+-]+)", line)
        assert found, line
        reported = float(found.group(1))
        assert 0 <= reported <= 1e-4

    names = rc.domain_names
    for filename, key in expected.items():
        gen = gens[key]
        proto = onnx.load(str(out / filename))
        props = meta.read_props(proto)
        want = {
            meta.KIND: kind, meta.MODEL: name, meta.INPUT_SIZE: str(SIZE),
            meta.INPUT_RANGE: "-1,1", meta.CHANNEL_ORDER: "RGB",
            meta.VERSION: translator.__version__, meta.CHECKPOINT_STEP: str(step),
            meta.PRECISION: "fp32",
        }
        if kind == "translation":
            src, dst = ("a", "b") if key == "a2b" else ("b", "a")
            want.update({meta.DIRECTION: key, meta.DOMAIN_FROM: names[src],
                         meta.DOMAIN_TO: names[dst], meta.SIZE_MULTIPLE: str(gen.size_multiple)})
            assert names[src] != names[dst]
        else:
            want[meta.LATENT_DIM] = str(gen.latent_dim)
            assert meta.DIRECTION not in props
        plugin_entries = {k: v for k, v in meta.prefixed(gen.metadata).items() if k not in want}
        assert {k: props.get(k) for k in {**want, **plugin_entries}} == {**want, **plugin_entries}

        session = ort_session(out / filename)
        shape = session.get_inputs()[0].shape
        g = torch.Generator().manual_seed(7)
        if kind == "translation":
            m = gen.size_multiple
            assert not any(isinstance(d, int) for d in (shape[0], shape[2], shape[3])), shape
            side = -(-SIZE // m) * m
            inputs = [torch.rand(1, 3, side, side, generator=g) * 2 - 1,
                      torch.rand(2, 3, side + m, side + 3 * m, generator=g) * 2 - 1]
        else:
            assert shape[1] == gen.latent_dim and not isinstance(shape[0], int), shape
            inputs = [torch.randn(b, gen.latent_dim, generator=g) for b in (1, 5)]
        assert parity(session, gen.module, inputs) <= 1e-4


def _first(kind: str) -> str:
    from translator.registry import list_models

    names = [s.name for s in list_models() if s.kind == kind]
    assert names, f"no {kind} model registered"
    return names[0]


def test_fp16_both_directions_static_size_keep_metadata_and_float_io(export_runs, tmp_path):
    from translator.exporters.onnx_export import export_run

    from translator.training.runs import load_model

    name = "cyclegan" if "cyclegan" in model_names() else _first("translation")
    run = export_runs(name)
    model, rc, _ = load_model(run)
    gens = model.generators()
    m = gens["a2b"].size_multiple
    side = -(-SIZE // m) * m
    logs: list[str] = []
    # No direction: both; -o x.onnx with two files: x-a2b.onnx and x-b2a.onnx.
    files = export_run(ExportRequest(run, tmp_path / "half.onnx", None,
                                     {"fp16": True, "static_size": side, "log": logs.append}))
    paths = {"a2b": tmp_path / "half-a2b.onnx", "b2a": tmp_path / "half-b2a.onnx"}
    assert [f.path for f in files] == list(paths.values()) and len(logs) == 2
    assert files_in(tmp_path) == ["half-a2b.onnx", "half-b2a.onnx"]
    x = torch.rand(2, 3, side, side, generator=torch.Generator().manual_seed(3)) * 2 - 1
    for direction, path in paths.items():
        proto = onnx.load(str(path))
        props = meta.read_props(proto)
        src = "a" if direction == "a2b" else "b"
        assert props[meta.PRECISION] == "fp16" and props[meta.DIRECTION] == direction
        assert props[meta.DOMAIN_FROM] == rc.domain_names[src]
        assert props[meta.INPUT_SIZE] == str(side) and props[meta.KIND] == "translation"
        assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in proto.graph.initializer)
        session = ort_session(path)
        inp = session.get_inputs()[0]
        assert inp.type == "tensor(float)" and inp.shape[1:] == [3, side, side]
        assert not isinstance(inp.shape[0], int)  # batch stays dynamic
        error = parity(session, gens[direction].module, [x])
        assert 0 < error <= 2e-2  # fp16 weights really are used, and within the bound

    shown = invoke(["inspect", str(paths["a2b"])])
    assert shown.exit_code == 0, shown.output
    assert "ai.onnx 18" in shown.output and "self-contained" in shown.output
    assert re.search(rf"image\s+float32\s+\[batch, 3, {side}, {side}\]", shown.output)
    assert re.search(r"gantool\.precision\s+= fp16", shown.output)
    assert "CPUExecutionProvider" in shown.output


def test_failed_verification_writes_nothing_and_no_verify_skips_it(export_runs, tmp_path,
                                                                   monkeypatch):
    from translator.exporters import onnx_export

    run = export_runs(_first("generation"))
    monkeypatch.setattr(onnx_export, "FP32_TOLERANCE", -1.0)  # no error can pass
    out = tmp_path / "out"
    result = invoke(["export", "onnx", str(run), "-o", str(out)])
    assert result.exit_code == 1
    assert re.search(r"^Error: .*differs from PyTorch by [0-9.e+-]+ .*more than the -1 allowed",
                     result.output), result.output
    assert files_in(out) == []
    result = invoke(["export", "onnx", str(run), "-o", str(out), "--no-verify"])
    assert result.exit_code == 0 and "not verified" in result.output
    assert len(files_in(out)) == 1


# -- bad input -----------------------------------------------------------------------------
def _corrupt_config(run: Path) -> None:
    (run / "config.json").write_text("{not json")


def _corrupt_weights(run: Path) -> None:
    for weights in (run / "checkpoints").glob("step-*/weights.safetensors"):
        weights.write_bytes(b"\x00garbage" * 10)


@pytest.mark.parametrize("case, args, words", [
    ("missing run", [], "not a run folder"),
    ("corrupt config", [], "not valid JSON"),
    ("corrupt weights", [], "corrupt"),
    ("missing step", ["--checkpoint", "999"], "no checkpoint at step 999"),
    ("opset too high", ["--opset", "99"], "--opset 99 cannot be written"),
    ("direction on generation", ["--direction", "a2b"], "no direction"),
    ("static size on generation", ["--static-size", "32"], "translation models"),
])
def test_bad_input_is_one_line_and_leaves_no_file(case, args, words, export_runs, tmp_path):
    run = tmp_path / "run"
    if case != "missing run":
        shutil.copytree(export_runs(_first("generation")), run)
    if case == "corrupt config":
        _corrupt_config(run)
    elif case == "corrupt weights":
        _corrupt_weights(run)
    out = tmp_path / "out"
    result = invoke(["export", "onnx", str(run), "-o", str(out), *args])
    assert result.exit_code == 1
    assert result.output.count("\n") == 1 and result.output.startswith("Error: "), result.output
    assert words in result.output
    assert files_in(out) == [] and not (run / "export").exists()


def test_static_size_must_fit_the_size_multiple(export_runs, tmp_path):
    from translator.exporters.onnx_export import export_run

    from translator.training.runs import load_model

    name = _first("translation")
    run = export_runs(name)
    m = next(iter(load_model(run)[0].generators().values())).size_multiple
    with pytest.raises(GantoolError, match=f"divisible by {m}"):
        export_run(ExportRequest(run, tmp_path / "x.onnx", "a2b", {"static_size": 4 * m + 2}))
    assert files_in(tmp_path) == []


def test_unwritable_opset_in_a_fresh_process_is_one_quiet_line(export_runs, tmp_path):
    """torch exports at 18, converts down to 9, fails, keeps 18, and logs warnings and a
    traceback: the user must see only our line, and no file. A fresh process, because log
    handlers and once-only warnings of an earlier export in this one would hide chatter."""
    run = export_runs(_first("generation"))
    out = tmp_path / "out"
    argv = ["export", "onnx", str(run), "-o", str(out), "--opset", "9"]
    proc = subprocess.run([sys.executable, "-c", f"from translator.cli import main; main({argv!r})"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("Error: --opset 9"), proc.stderr
    assert "use --opset 18 or higher" in proc.stderr
    assert files_in(out) == []


def test_inspect_rejects_missing_and_non_onnx_files(tmp_path):
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x08\xff\xff\xff garbage")
    for path, words in ((tmp_path / "none.onnx", "no such file"), (junk, "not an ONNX model")):
        result = invoke(["inspect", str(path)])
        assert result.exit_code == 1 and result.output.startswith("Error: ") and words in result.output


# -- plumbing ------------------------------------------------------------------------------
def test_output_paths_rules(tmp_path):
    from translator.exporters.onnx_export import output_paths

    run, both = tmp_path / "run", ["a2b", "b2a"]
    assert output_paths(None, run, "cyclegan", both, False) == {
        "a2b": run / "export/cyclegan-a2b.onnx", "b2a": run / "export/cyclegan-b2a.onnx"}
    assert output_paths(None, run, "dcgan", ["generator"], True) == {
        "generator": run / "export/dcgan.onnx"}
    assert output_paths(tmp_path / "m.onnx", run, "cyclegan", both, False) == {
        "a2b": tmp_path / "m-a2b.onnx", "b2a": tmp_path / "m-b2a.onnx"}
    assert output_paths(tmp_path / "m.onnx", run, "cyclegan", ["b2a"], False) == {
        "b2a": tmp_path / "m.onnx"}
    assert output_paths(tmp_path / "dir", run, "cyclegan", ["a2b"], False) == {
        "a2b": tmp_path / "dir/cyclegan-a2b.onnx"}
    assert output_paths(tmp_path / "{model}_{direction}.onnx", run, "c", both, False) == {
        "a2b": tmp_path / "c_a2b.onnx", "b2a": tmp_path / "c_b2a.onnx"}
    with pytest.raises(GantoolError, match="same file"):
        output_paths(tmp_path / "{model}.onnx", run, "c", both, False)


def test_build_metadata_keeps_core_keys_the_exporters_and_plugin_keys_beside_them():
    from types import SimpleNamespace

    from translator.exporters.onnx_export import OnnxOptions, build_metadata

    rc = SimpleNamespace(spec=SimpleNamespace(name="cyclegan"), train=SimpleNamespace(size=64),
                         domain_names={"a": "day", "b": "night"})
    plugin = {"architecture": "unet_64", "direction": "b2a", "gantool.latent_dim": "9"}
    gen = SimpleNamespace(kind="translation", metadata=plugin, size_multiple=4, latent_dim=None)
    props = build_metadata(gen, rc, 300, "a2b", OnnxOptions(fp16=True)).to_props()
    assert props == {
        meta.KIND: "translation", meta.MODEL: "cyclegan", meta.DIRECTION: "a2b",
        meta.DOMAIN_FROM: "day", meta.DOMAIN_TO: "night", meta.INPUT_SIZE: "64",
        meta.SIZE_MULTIPLE: "4", meta.INPUT_RANGE: "-1,1", meta.CHANNEL_ORDER: "RGB",
        meta.VERSION: translator.__version__, meta.PRECISION: "fp16", meta.CHECKPOINT_STEP: "300",
        "gantool.architecture": "unet_64",
    }
    gen = SimpleNamespace(kind="generation", metadata=plugin, size_multiple=1, latent_dim=16)
    props = build_metadata(gen, rc, 5, None, OnnxOptions()).to_props()
    assert props[meta.LATENT_DIM] == "16" and props[meta.PRECISION] == "fp32"
    assert not {meta.DIRECTION, meta.DOMAIN_FROM, meta.DOMAIN_TO, meta.SIZE_MULTIPLE} & set(props)


def test_reading_a_request_needs_neither_torch_nor_onnx():
    code = ("import sys, translator.exporters.onnx_request as r;"
            "r.OnnxOptions.from_request({'opset': '17', 'fp16': 'yes'});"
            "print(sorted({'torch', 'onnx', 'onnxruntime'} & set(sys.modules)))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_metadata_helpers_merge_and_prefix():
    model = onnx.ModelProto()
    meta.write_props(model, {"producer.note": "keep", meta.KIND: "generation"})
    meta.write_props(model, {meta.KIND: "translation", meta.SIZE_MULTIPLE: "4"})
    assert meta.read_props(model) == {"producer.note": "keep", meta.KIND: "translation",
                                      meta.SIZE_MULTIPLE: "4"}
    assert meta.gantool_entries(meta.read_props(model)) == {meta.KIND: "translation",
                                                           meta.SIZE_MULTIPLE: "4"}
    assert meta.strip_prefix(meta.read_props(model)) == {"kind": "translation", "size_multiple": "4"}
    assert meta.prefixed({"architecture": "unet_32", "gantool.x": 1}) == {
        "gantool.architecture": "unet_32", "gantool.x": "1"}


def test_plugin_import_is_cheap_and_registers_onnx():
    code = ("import sys, translator.exporters.onnx as m, translator.onnx_metadata;"
            "from translator.registry import get_registry;"
            "assert get_registry().exporter('onnx').export is m.export_onnx;"
            "print(sorted({'torch', 'onnx', 'onnxruntime'} & set(sys.modules)))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_export_dispatches_to_any_registered_exporter(tmp_path):
    from translator.manager import create_plugin_manager, set_plugin_manager

    seen: list[ExportRequest] = []

    @translator.hookimpl
    def register_exporters(register):
        def export(request: ExportRequest) -> list[Path]:
            seen.append(request)
            return [tmp_path / "x.fake"]

        register(translator.ExporterSpec("fake", "A test format", export))

    fake_exporter = types.ModuleType("fake_exporter")
    vars(fake_exporter).update(register_exporters=register_exporters)
    pm = create_plugin_manager()
    pm.add_plugin(fake_exporter, "fake-exporter")
    set_plugin_manager(pm)
    try:
        listing = invoke(["export", "--help"])
        assert "fake" in listing.output and "onnx" in listing.output
        result = invoke(["export", "fake", str(tmp_path / "run"), "--direction", "b2a",
                         "--checkpoint", "3", "--option", "quality=5", "--option", "mode=fast"])
        assert result.exit_code == 0, result.output
        assert result.output == f"Wrote {tmp_path / 'x.fake'}\n"
        (request,) = seen
        assert (request.run_dir, request.direction, request.checkpoint, request.options) == (
            tmp_path / "run", "b2a", 3, {"quality": 5, "mode": "fast"})
        unknown = invoke(["export", "nope", "x"])
        assert unknown.exit_code == 2 and "unknown exporter 'nope'" in unknown.output
    finally:
        set_plugin_manager(None)
