"""gantool's built-in plugins. This folder, ``plugins/``, is the package ``translator.plugins``.

``pyproject.toml`` maps the folder to that name (``[tool.setuptools] package-dir``), so
``translator.plugins.cyclegan`` is ``plugins/cyclegan/`` and ``translator.plugins.faces``
is ``plugins/faces/``. Each module here is loaded through the ``gantool`` entry-point
group exactly as a third-party plugin is: ``dcgan`` (DCGAN, WGAN, WGAN-GP), ``cyclegan``
(ResNet, U-Net and mobile generators), ``datasets`` (every built-in data set and
folder format, entry point ``builtin_data``) and ``faces`` (Haar and YuNet, entry point
``haar``). The core never imports them: it reaches them through the registry only.
"""
