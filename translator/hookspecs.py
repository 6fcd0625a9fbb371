"""The hooks a gantool plugin can implement.

Every hook that adds things takes a ``register`` callable, so one plugin can add several
things and a hook's signature never has to change when a spec grows. Implement a hook with
``@translator.hookimpl`` in a module listed under the ``gantool`` entry-point group.
Hooks are called with keyword arguments; an implementation may accept fewer arguments
than the spec names. Each implementation is called on its own, built-in plugins first: a
name that is already taken is refused for the later registrant only, and a plugin whose
hook raises is shown broken by ``gantool plugins``. ``docs/plugins.md`` is the guide; its
hook table is checked against this file.

A new hook that registers things is this file's hookspec, its spec type in
:mod:`translator.specs`, one row of :data:`translator.registry.REGISTRATION_HOOKS` and one
row of the guide's hook table; tests check that the four agree.
"""

from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("gantool")


@hookspec
def register_models(register):
    """Register GAN models.

    Called once when the registry is first needed.

    :param register: call ``register(ModelSpec(...))`` once per model. A
        :class:`translator.ModelSpec` names the model, its kind (``"generation"`` or
        ``"translation"``), its config dataclass (whose fields become ``gantool train MODEL``
        flags) and a ``build(config)`` that returns a :class:`translator.training.gan.GANModel`.
    """


@hookspec
def register_datasets(register):
    """Register data sources for ``--data``.

    :param register: call ``register(DatasetSpec(...))``. A spec with ``detect=None`` is
        chosen by name (``--data demo``); a spec with ``detect(path) -> bool`` is tried, in
        ``priority`` order, on a ``--data`` folder. ``open(path, request)`` returns one
        :class:`translator.data.ImageList` per requested domain.
    """


@hookspec
def register_exporters(register):
    """Register exporters for ``gantool export FORMAT RUN``.

    :param register: call ``register(ExporterSpec(name, description, export))``. ``export``
        receives an :class:`translator.specs.ExportRequest` and returns the written paths.
    """


@hookspec
def register_face_detectors(register):
    """Register face detectors for the runtime's face-aware mode (``--faces``).

    :param register: call ``register(FaceDetectorSpec(name, description, create))``.
        ``create(**options)`` returns an object with ``detect(bgr_image) -> list of
        (x, y, w, h)`` boxes in pixels.
    """


@hookspec
def register_commands(cli):
    """Add commands to the ``gantool`` CLI.

    :param cli: a :class:`click.Group` for this plugin; call ``cli.command()`` or
        ``cli.add_command(...)``. Its commands join ``gantool``'s once the hook returns. A
        name that a core command (or an earlier plugin) has is refused and reported by
        ``gantool plugins``. Keep heavy imports inside the command functions so that
        ``gantool --help`` stays fast.
    """


@hookspec
def register_figures(register):
    """Register figures that ``gantool evaluate RUN`` reports, beside cycle and identity L1.

    :param register: call ``register(FigureSpec(name, description, create))``. ``create(run,
        column)`` returns ``None`` where the figure does not apply (another data set, another
        kind of model), else an object whose ``update(batch)`` sees every batch of
        that column and whose ``result()`` returns ``{figure name: value}``.
    """
