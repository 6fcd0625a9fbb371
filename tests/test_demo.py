"""`gantool demo` end to end, shortened: train, export, apply, picture."""

from __future__ import annotations

from PIL import Image


def test_demo_writes_its_picture_model_and_outputs(run_cli, tmp_path):
    out = tmp_path / "demo"
    result = run_cli("demo", "--out", out, "--steps", "2", "--size", "32")
    assert result.exit_code == 0, result.output
    assert "The demo wrote:" in result.output
    # 8 unseen day scenes of 128 px and their translations, 4 images per row.
    assert Image.open(out / "demo.png").size == (4 * 130 + 2, 4 * 130 + 2)
    assert (out / "day2night.onnx").stat().st_size > 10_000
    assert len(list((out / "outputs").rglob("*.png"))) == 8
    assert (out / "run" / "logs" / "losses.png").is_file()
    # Running it again replaces its own output; a foreign folder is refused.
    assert run_cli("demo", "--out", out, "--steps", "1", "--size", "32").exit_code == 0
    other = tmp_path / "mine"
    other.mkdir()
    (other / "precious.txt").write_text("keep me")
    result = run_cli("demo", "--out", other, "--steps", "1", "--size", "32")
    assert result.exit_code == 1 and "not a demo folder" in result.output
    assert (other / "precious.txt").read_text() == "keep me"
