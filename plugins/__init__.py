"""gantool's built-in plugins. This folder, ``plugins/``, is the package ``translator.plugins``.

``pyproject.toml`` maps the folder to that name (``[tool.setuptools] package-dir``), so
``translator.plugins.cyclegan`` is ``plugins/cyclegan/`` and ``translator.plugins.faces``
is ``plugins/faces.py``. Each module here is loaded through the ``gantool`` entry-point
group exactly as a third-party plugin is: ``dcgan`` (DCGAN, WGAN, WGAN-GP), ``cyclegan``
(ResNet, U-Net and mobile generators), ``datasets`` and ``faces``.
"""
