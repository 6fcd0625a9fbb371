"""``gantool serve``: parse, build the app from :mod:`translator.serve`, run uvicorn."""

from __future__ import annotations

import click

from translator.runtime.options import MODEL_FIELDS, RuntimeOptions

from .runtime import runtime_flags

INSTALL_HINT = "gantool serve needs the serve extra: pip install 'gantool[serve]' (starlette, uvicorn)"


@runtime_flags(MODEL_FIELDS)
@click.command("serve")
@click.option(
    "--model",
    "-m",
    "models",
    multiple=True,
    required=True,
    metavar="FILE.onnx",
    help="Exported ONNX model; repeat for several. The two directions of one run are offered together.",
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to bind. Anything but loopback serves everyone who can reach this machine.",
)
@click.option("--port", type=click.IntRange(0, 65535), default=8666, show_default=True)
@click.option(
    "--max-upload-mb",
    type=click.FloatRange(min=0.01),
    default=10.0,
    show_default=True,
    help="Largest upload accepted (larger ones get 413).",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=2,
    show_default=True,
    help="Requests that decode images or run a model at once; the rest wait.",
)
@click.option("--access-log", is_flag=True, help="Log every request.")
def serve_command(
    models: tuple[str, ...],
    host: str,
    port: int,
    max_upload_mb: float,
    workers: int,
    access_log: bool,
    options: RuntimeOptions,
) -> None:
    """Serve a web page over the models: sample, edit and interpolate with generation models;
    upload an image (or pick a bundled sample) and translate it with translation models."""
    from translator.errors import GantoolError

    try:
        import uvicorn  # noqa: F401  (checked here so a missing extra is one clear line)

        from translator.serve.app import create_app, loopback_hosts
        from translator.serve.server import bind, run_server
    except ImportError as exc:
        raise GantoolError(f"{INSTALL_HINT} ({exc})") from None

    said: set[str] | None = set()

    def log(message: str) -> None:
        # While loading, each model would repeat the same provider note ("CUDA not used ...");
        # later messages (request errors) are all shown.
        if said is None or message not in said:
            click.echo(message, err=True)
        if said is not None:
            said.add(message)

    app = create_app(
        models,
        options,
        max_upload_bytes=int(max_upload_mb * 1024 * 1024),
        workers=workers,
        allowed_hosts=loopback_hosts(host),
        log=log,
    )
    said = None
    sock = bind(host, port)
    for served in app.state.service.models.values():
        log(f"{served.id}: {served.info.describe()} on {served.session.provider_name}")
    if loopback_hosts(host) is None:
        log(f"Warning: bound to {host}: anyone who can reach this machine can use the models.")
    shown = f"[{host}]" if ":" in host else host
    click.echo(f"Serving on http://{shown}:{sock.getsockname()[1]}/  (Ctrl+C to stop)")
    run_server(app, sock, access_log=access_log)


def add_commands(cli: click.Group) -> None:
    cli.add_command(serve_command)
