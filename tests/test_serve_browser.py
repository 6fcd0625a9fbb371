"""End to end in a real headless browser: Debian's chromium driven by Playwright.

Skips (with the reason) when chromium, Playwright or the serve extra is missing; CI
installs them (``apt-get install chromium``, ``pip install playwright``; no
``playwright install``: we launch the system browser).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from translator.runtime.options import RuntimeOptions

CHROMIUM = os.environ.get("GANTOOL_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

if not Path(CHROMIUM).is_file():
    pytest.skip(f"no chromium browser at {CHROMIUM} (apt-get install chromium)", allow_module_level=True)
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="Playwright is not installed (pip install playwright)"
)
pytest.importorskip("starlette", reason="the serve extra (starlette) is not installed")
pytest.importorskip("uvicorn", reason="the serve extra (uvicorn) is not installed")

from runtime_helpers import astronaut, make_generator_model, make_invert_model  # noqa: E402

TIMEOUT_MS = 20_000

# Pixels of an <img> through a canvas: [mean R, G, B] of the whole image.
MEAN_RGB_JS = """(img) => {
  const c = document.createElement('canvas');
  c.width = img.naturalWidth; c.height = img.naturalHeight;
  const g = c.getContext('2d'); g.drawImage(img, 0, 0);
  const d = g.getImageData(0, 0, c.width, c.height).data;
  const s = [0, 0, 0];
  for (let i = 0; i < d.length; i += 4) { s[0] += d[i]; s[1] += d[i + 1]; s[2] += d[i + 2]; }
  const n = d.length / 4;
  return [s[0] / n, s[1] / n, s[2] / n];
}"""


@pytest.fixture(scope="module")
def server_url(tmp_path_factory):
    from translator.serve import create_app
    from translator.serve.app import loopback_hosts
    from translator.serve.server import serve_in_background

    d = tmp_path_factory.mktemp("browser-models")
    make_invert_model(d / "photo2negative.onnx")
    make_generator_model(d / "dcgan.onnx", latent_dim=8, size=16, dcgan_input=True)
    app = create_app([d / "photo2negative.onnx", d / "dcgan.onnx"],
                     options=RuntimeOptions(provider="cpu"), allowed_hosts=loopback_hosts("127.0.0.1"),
                     log=lambda m: None)
    with serve_in_background(app) as url:
        yield url


@pytest.fixture(scope="module")
def page(server_url):
    try:
        pw = sync_api.sync_playwright().start()
    except Exception as exc:  # the driver Playwright ships could not start here
        pytest.skip(f"Playwright could not start: {exc}")
    try:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
    except Exception as exc:
        pw.stop()
        pytest.skip(f"chromium at {CHROMIUM} could not be launched: {str(exc).splitlines()[0]}")
    page = browser.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield page
        assert not errors, f"JavaScript errors on the page: {errors}"
    finally:
        browser.close()
        pw.stop()


def test_generation_sliders_rerender_the_selected_sample(page, server_url):
    page.goto(server_url + "/")
    page.select_option("[data-testid=entry]", label="dcgan: linear (latent 8)")
    page.wait_for_selector("[data-testid=grid] img >> nth=15")
    assert page.locator("[data-testid=grid] img").count() == 16
    assert "provider: cpu" in page.text_content("[data-testid=status]")

    page.click("[data-testid=grid] img >> nth=2")
    edit = page.locator("[data-testid=edit-image]")
    before = edit.get_attribute("src")
    assert before == page.locator("[data-testid=grid] img >> nth=2").get_attribute("src")
    assert page.locator("[data-testid=sliders] input[type=range]").count() == 8

    slider = page.locator("[data-testid=slider-3]")
    value = float(slider.input_value())
    slider.fill(str(round(-2.5 if value > 0 else 2.5, 2)))
    page.wait_for_function(
        "(before) => document.querySelector('[data-testid=edit-image]').src !== before", arg=before
    )
    after = edit.get_attribute("src")
    assert after.startswith("data:image/png;base64,") and after != before
    # The grid shows the edited sample too, and the timing line came from the new render.
    assert page.locator("[data-testid=grid] img >> nth=2").get_attribute("src") == after
    assert "server" in page.text_content("[data-testid=status]")

    page.click("[data-testid=interpolate]")
    page.wait_for_selector("[data-testid=strip] img >> nth=7")
    assert page.locator("[data-testid=strip] img").count() == 8
    assert page.text_content("[data-testid=message]") == ""


def test_upload_astronaut_and_see_it_translated(page, server_url, tmp_path):
    from PIL import Image

    src = astronaut()
    path = tmp_path / "astronaut.png"
    Image.fromarray(src).save(path)

    page.goto(server_url + "/")
    page.select_option("[data-testid=entry]", index=0)
    page.set_input_files("[data-testid=file]", str(path))
    out = page.locator("[data-testid=output-image]")
    page.wait_for_function(
        "() => { const i = document.querySelector('[data-testid=output-image]');"
        " return i.src.startsWith('blob:') && i.complete && i.naturalWidth > 0; }"
    )
    size = out.evaluate("(img) => [img.naturalWidth, img.naturalHeight]")
    assert size == [512, 512]
    # The test model inverts colours, so the result's mean is 255 minus the input's.
    mean = np.array(out.evaluate(MEAN_RGB_JS))
    expected = 255 - src.reshape(-1, 3).mean(axis=0)
    assert np.abs(mean - expected).max() < 4, (mean, expected)
    assert page.locator("[data-testid=input-image]").evaluate("(img) => img.naturalWidth") == 512

    status = page.text_content("[data-testid=status]")
    assert "provider: cpu" in status and "server" in status and "512x512" in status
    download = page.locator("[data-testid=download]")
    assert download.is_visible() and download.get_attribute("download").endswith(".png")
    with page.expect_download() as info:
        download.click()
    saved = tmp_path / "downloaded.png"
    info.value.save_as(saved)
    assert np.asarray(Image.open(saved)).shape == (512, 512, 3)


def test_bad_upload_shows_the_server_message(page, server_url, tmp_path):
    bad = tmp_path / "notes.png"
    bad.write_bytes(b"not really a png")
    page.goto(server_url + "/")
    page.select_option("[data-testid=entry]", index=0)
    page.set_input_files("[data-testid=file]", str(bad))
    page.wait_for_function("() => document.querySelector('[data-testid=message]').textContent.length > 0")
    assert page.text_content("[data-testid=message]").startswith("415: the upload is not an image")

    big = tmp_path / "huge.jpg"
    big.write_bytes(b"\xff\xd8" + b"\0" * (11 * 1024 * 1024))
    page.set_input_files("[data-testid=file]", str(big))
    page.wait_for_function("() => document.querySelector('[data-testid=message]').textContent.includes('MB')")
    assert "accepts up to 10.0 MB" in page.text_content("[data-testid=message]")

    # A bundled sample still works afterwards.
    page.click("[data-testid=sample-coffee]")
    page.wait_for_function("() => document.querySelector('[data-testid=message]').textContent === ''")
    page.wait_for_function(
        "() => { const i = document.querySelector('[data-testid=output-image]');"
        " return i.complete && i.naturalWidth === 600; }"
    )


VISIBLE_JS = "(el) => !el.hidden && el.getBoundingClientRect().width > 0"


def test_the_empty_page_shows_words_not_broken_images(page, server_url):
    page.goto(server_url + "/")
    page.select_option("[data-testid=entry]", index=0)
    page.wait_for_selector("[data-testid=sample-astronaut]")
    for image in ("input-image", "output-image"):
        assert not page.locator(f"[data-testid={image}]").evaluate(VISIBLE_JS)
    assert page.text_content("[data-testid=input-state]") == "Upload an image or pick a sample"
    assert page.text_content("[data-testid=output-state]") == "The translation appears here"
    assert not page.locator("[data-testid=download]").is_visible()  # no dangling "Output ·"
    assert page.locator("figcaption >> nth=1").inner_text().strip() == "Output"


def test_a_failed_upload_leaves_no_stale_result_to_download(page, server_url, tmp_path):
    page.goto(server_url + "/")
    page.select_option("[data-testid=entry]", index=0)
    page.click("[data-testid=sample-coffee]")
    page.wait_for_function("() => !document.querySelector('[data-testid=output-image]').hidden")
    assert page.locator("[data-testid=download]").is_visible()
    assert "server" in page.text_content("[data-testid=status]")

    pdf = tmp_path / "report.jpg"  # a PDF renamed .jpg
    pdf.write_bytes(b"%PDF-1.4\n" + b"0" * 2000)
    page.set_input_files("[data-testid=file]", str(pdf))
    page.wait_for_function(
        "() => document.querySelector('[data-testid=output-state]').textContent.startsWith('Not translated')")
    assert "415" in page.text_content("[data-testid=output-state]")
    assert page.text_content("[data-testid=output-caption]") == "Output (failed)"
    assert not page.locator("[data-testid=download]").is_visible()
    assert page.locator("[data-testid=download]").get_attribute("href") is None
    assert not page.locator("[data-testid=output-image]").evaluate(VISIBLE_JS)
    assert "server" not in page.text_content("[data-testid=status]")  # no old timings
    page.wait_for_function(
        "() => document.querySelector('[data-testid=input-state]').textContent.includes('report.jpg')")
    assert not page.locator("[data-testid=input-image]").evaluate(VISIBLE_JS)

