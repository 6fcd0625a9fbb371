"""``translator.runtime``: running exported ONNX models on images, folders, video files and cameras.

Submodules import onnxruntime and OpenCV only when used:

- :mod:`.session`: provider choice and model metadata (``ModelSession``, ``ModelInfo``);
- :mod:`.pipeline`: the one frame pipeline (``FramePipeline``);
- :mod:`.faces`: detector lookup (detectors are plugins), crop/blend/colour match, box
  smoothing;
- :mod:`.sources`: one ``Source`` per input kind (image, folder, video file, camera) and
  ``SOURCE_KINDS``, the table that picks one for a path or a camera index;
- :mod:`.sinks`: one ``Sink`` per output kind (``ImageSink``; ``VideoSink`` from :mod:`.video`);
- :mod:`.capture`: a source read in its own thread, the newest frame winning when live;
- :mod:`.stages`: stream stages in their own threads, newest-wins hand-overs, latency;
- :mod:`.video`: H.264 MP4 with audio through PyAV (mp4v fallback), written atomically;
- :mod:`.apply`: ``apply()`` for files and folders; :mod:`.webcam`: ``run_webcam()``;
- :mod:`.generate`: the one generation path (``latent_noise``, ``run_generator``, ``sample_grid``);
- :mod:`.options`: ``RuntimeOptions``, the flags the runtime commands share;
- :mod:`.torch_model`: a run's checkpoint as a runtime model (``translate``, ``sample RUN``).
"""
