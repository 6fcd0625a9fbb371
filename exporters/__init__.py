"""Built-in exporters. This folder, ``exporters/``, is the package ``translator.exporters``.

``pyproject.toml`` maps the folder to that name (``[tool.setuptools] package-dir``), so
``translator.exporters.onnx`` is ``exporters/onnx.py`` (the plugin, registered through the
``gantool`` entry-point group) and ``translator.exporters.onnx_export`` is
``exporters/onnx_export.py`` (the work, imported when an export runs).
"""
