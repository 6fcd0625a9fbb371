#!/usr/bin/env bash
# gantool on a GPU machine, in one go: install it into the machine's Python (no package
# index needed), run the CUDA tests and the GPU benchmarks, keep every log under $OUT.
#
#   OUT=gpu-results bash benchmarks/gpu.sh install tests train profile infer webcam
#
# Stages run in the order given:
#   install  wheels (and packages as .tar.xz) waiting in .whl/ go to /tmp/site, first on
#            PYTHONPATH, then gantool itself with --no-deps; ORT_ARCHIVE names the parts of
#            an onnxruntime-gpu package split into pieces (.tar.xz), unpacked there too, so
#            that it takes precedence over a CPU-only onnxruntime
#   loop     `gantool train` itself (data loader included) at 256 px, batch 16: images/s
#   tests    pytest -m cuda (tests/test_cuda.py)
#   train    benchmarks/train.py: CycleGAN ResNet-9 at 256 px, the reference step against
#            TRAIN_PATHS (gantool's variants) at each of TRAIN_BATCHES; TRAIN_FLAGS added
#   profile  torch.profiler over the first of TRAIN_PATHS at batch 1
#   infer    benchmarks/gpu_inference.py: ResNet-9, U-Net, mobile at batch 1 and 16
#   webcam   gantool webcam on a 640x480 clip (WEBCAM_FRAMES frames) with a ResNet-9,
#            without and with --faces
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu-results}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1 PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
TRAIN_PATHS=${TRAIN_PATHS:-gantool}
TRAIN_BATCHES=${TRAIN_BATCHES:-1 16}

# Runs a command with its output in $OUT/NAME.log, and says how it ended.
step() {
    local name=$1 began=$SECONDS
    shift
    echo "== $name: $*"
    "$@" >>"$OUT/$name.log" 2>&1
    echo "   exit $? after $((SECONDS - began)) s"
}

install() {
    nvidia-smi
    "$PY" -c "import torch; print('torch', torch.__version__, 'CUDA', torch.version.cuda, \
'cuDNN', torch.backends.cudnn.version(), torch.cuda.get_device_name())"
    mkdir -p /tmp/site
    if [ -n "${ORT_ARCHIVE:-}" ]; then  # onnxruntime-gpu, as a split .tar.xz
        cat $ORT_ARCHIVE | xz -d | tar x -C /tmp/site || return 1
    fi
    for archive in .whl/*.tar.xz; do
        [ -e "$archive" ] && { xz -dc "$archive" | tar x -C /tmp/site || return 1; }
    done
    if compgen -G ".whl/*.whl" >/dev/null; then
        "$PY" -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl || return 1
    fi
    "$PY" -m pip install -q --no-index --no-deps --no-build-isolation -e . || return 1
    "$PY" -c "import onnxruntime as ort; print('onnxruntime', ort.__version__, ort.__file__, \
ort.get_available_providers())"
    "$PY" -m translator.cli models
}

gpu_tests() {
    "$PY" -m pytest -m cuda tests/test_cuda.py -q -rs -p no:cacheprovider --durations=8 -s
}

train_speed() {
    for batch in $TRAIN_BATCHES; do
        "$PY" benchmarks/train.py --models cyclegan --size 256 --batch-size "$batch" \
            --steps 10 --repeats 5 --warmup 5 --paths $TRAIN_PATHS ${TRAIN_FLAGS:-}
    done
}

train_profile() {
    "$PY" benchmarks/train.py --models cyclegan --size 256 --batch-size 1 --steps 5 \
        --warmup 5 --profile --paths $TRAIN_PATHS
}

train_loop() {
    "$PY" - <<'EOF'
import time

from translator.config import TrainConfig
from translator.training import train

for compile_ in (False, True):
    cfg = TrainConfig(model="cyclegan", data="demo", size=256, batch_size=16, steps=60,
                      out=f"/tmp/gantool-loop-{compile_}", compile=compile_, log_every=20,
                      sample_every=1000, checkpoint_every=1000)
    when: dict[int, float] = {}
    train(cfg, progress=False, on_step=lambda step, *_: when.setdefault(step, time.perf_counter()))
    rate = 16 * 40 / (when[60] - when[20])
    print(f"gantool train cyclegan 256 px batch 16 compile={compile_}: {rate:.1f} images/s "
          "(steps 20-60, data loader included)")
EOF
}

inference() {
    "$PY" benchmarks/gpu_inference.py --batches 1 16 ${INFER_FLAGS:-}
}

webcam() {
    local dir=/tmp/gantool-webcam
    mkdir -p $dir
    "$PY" - "$dir" "${WEBCAM_FRAMES:-300}" <<'EOF' || return 1
import sys
from pathlib import Path

sys.path.insert(0, "benchmarks")
from runtime import export_variant, make_video  # noqa: E402

folder = Path(sys.argv[1])
make_video(folder / "clip.mp4", int(sys.argv[2]))
export_variant("cyclegan", 256, folder)
print("clip and ResNet-9 model in", folder)
EOF
    for faces in ${WEBCAM_FACES:---no-faces --faces}; do
        "$PY" -m translator.cli webcam --model $dir/cyclegan-a2b.onnx --source $dir/clip.mp4 \
            --no-window --provider auto $faces
    done
}

for stage in "$@"; do
    case $stage in
        install) step install install ;;
        tests) step tests gpu_tests ;;
        train) step train train_speed ;;
        loop) step loop train_loop ;;
        profile) step profile train_profile ;;
        infer) step infer inference ;;
        webcam) step webcam webcam ;;
        *) echo "unknown stage: $stage" >&2; exit 2 ;;
    esac
done

