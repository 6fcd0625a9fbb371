"""``translator.training``: the torch side of gantool, around the loop every plugin shares.

- :mod:`.loop`: :func:`train`, the loop (read it in one sitting);
- :mod:`.setup`: a run ready for its first step (:class:`~.setup.Run`);
- :mod:`.state`: :class:`~.state.TrainingState`, what a checkpoint holds besides weights;
- :mod:`.outputs`: loss logs, sample grids, checkpoints as the loop writes them;
- :mod:`.runs`: run folders, ``config.json``, a run's model loaded back;
- :mod:`.gan`: the base class a model plugin subclasses (:class:`~.gan.GANModel`), its
  step context and shared losses;
- :mod:`.checkpoint`, :mod:`.ema`, :mod:`.diffaugment`, :mod:`.augmentation`,
  :mod:`.device`, :mod:`.tensorboard_log`: the pieces the loop uses.

Importing this package imports torch; ``import translator`` alone does not.
"""

from .loop import TrainResult, train

__all__ = ["TrainResult", "train"]
