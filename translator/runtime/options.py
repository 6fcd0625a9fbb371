"""How a model is run over frames: one dataclass for ``apply``, ``webcam``, ``translate``
and ``serve``.

Each field is declared here once, with its help text and bounds in the field's metadata;
the commands turn the fields they offer into flags with
:func:`translator.config.click_options` (as ``TrainConfig`` does for ``gantool train``),
and the library functions take the dataclass, so a flag, its help and its range check
cannot drift apart between commands.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from translator.config import check_ranges
from translator.errors import GantoolError
from translator.onnx_metadata import MAX_INPUT_SIZE, MIN_INPUT_SIZE

if TYPE_CHECKING:  # the commands import this module for their flags: keep --help light
    from .session import Log, ModelSession

#: The fields that say how a model file is opened (the rest say what is done with it).
MODEL_FIELDS = frozenset({"provider", "size", "input_range"})


@dataclass(frozen=True)
class RuntimeOptions:
    """Options shared by the runtime's commands; each field is a flag of those that offer it."""

    provider: Literal["auto", "cpu", "cuda", "tensorrt", "openvino", "coreml", "directml",
                      "rocm"] = field(default="auto", metadata={
        "help": "onnxruntime execution provider; auto uses CUDA when it works, else OpenVINO "
                "when this onnxruntime has it, else the CPU. One "
                "this onnxruntime package lacks, or that does not start here, falls back to "
                "the CPU with one line saying why (gantool providers lists them)."})
    size: int | None = field(default=None, metadata={
        "help": "Processing size (short side, pixels). Default: apply and translate run each "
                "image at its own size (short side from the training size up to 1024); "
                "webcam, serve and faces (--faces) at the model's training size.",
        "min": MIN_INPUT_SIZE, "max": MAX_INPUT_SIZE})
    input_range: str | None = field(default=None, metadata={
        "help": "Value range the model expects (e.g. 0,1 or -1,1); only for models without "
                "gantool metadata.", "metavar": "LO,HI"})
    faces: bool = field(default=False, metadata={
        "help": "Translate only the faces, blended back into the frame."})
    face: str = field(default="all", metadata={
        "help": "Which faces (implies --faces): all; largest, left, right, or N (the N-th "
                "from the left), each followed across a video's frames once chosen; female "
                "or male, as the face detector reads them (dlib does; it is the default "
                "when installed).",
        "metavar": "all|largest|left|right|N|female|male"})
    detector: str | None = field(default=None, metadata={
        "help": "Face detector plugin (built in: dlib, haar, yunet). Default: dlib when "
                'installed (pip install "gantool[faces]"), else haar; yunet with --face-model.',
        "metavar": "NAME"})
    face_model: str | None = field(default=None, metadata={
        "help": "Face detector model file (a YuNet .onnx selects the yunet detector).",
        "metavar": "FILE"})
    blend: Literal["feather", "poisson"] = field(default="feather", metadata={
        "help": "How faces are blended back (--faces)."})
    color_match: bool = field(default=False, metadata={
        "help": "Match each face's colours to the original (--faces)."})
    side_by_side: bool = field(default=False, metadata={
        "help": "Write the original and the result side by side."})
    batch_size: int = field(default=4, metadata={
        "help": "Images (or faces, or video frames) per model run.", "min": 1})
    progress: bool = field(default=True, metadata={"help": "Show progress bars."})

    def __post_init__(self) -> None:
        check_ranges(self)
        from .faces import FaceChoice

        if FaceChoice.parse(self.face).rule != "all" and not self.faces:
            object.__setattr__(self, "faces", True)  # a choice of faces means face mode
        if self.input_range is not None:
            from .session import parse_range

            parse_range(self.input_range)  # finite, ordered: one clear line otherwise
        if self.face_model is not None and Path(self.face_model).is_dir():
            raise GantoolError(f"--face-model {self.face_model} is a folder, not a model file")

    def open_model(self, path: str | os.PathLike, log: Log | None = None,
                   threads: int | None = None) -> ModelSession:
        """The ONNX file at ``path``, opened on the chosen provider at the chosen size."""
        from .session import ModelSession, stderr_log

        return ModelSession(path, self.provider, size=self.size, input_range=self.input_range,
                            log=log or stderr_log, threads=threads)

    def detector_choice(self) -> tuple[str | None, dict[str, Any]]:
        """(detector name, its options): a model file picks yunet unless a name is given."""
        if self.face_model is None:
            return self.detector, {}
        name = self.detector or "yunet"
        return name, {"cascade" if name == "haar" else "model": self.face_model}

    def face_options(self, **extra: Any) -> Any:
        """The pipeline's face settings, with the chosen detector created."""
        from ..face_detectors import create_detector
        from .faces import FaceChoice, check_choice
        from .pipeline import FaceOptions

        name, options = self.detector_choice()
        detector, choice = create_detector(name, **options), FaceChoice.parse(self.face)
        check_choice(choice, getattr(detector, "gender", None))  # before any file is read
        return FaceOptions(detector, blend=self.blend, color_match=self.color_match,
                           choice=choice, **extra)
