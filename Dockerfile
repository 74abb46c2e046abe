# hvitgan-tf on a GPU: the official TensorFlow 2.21 GPU image with the package installed.
#   docker build -t hvitgan-tf .
#   docker run --gpus all -v $PWD/runs:/work/runs -v $PWD/saved_models:/work/saved_models \
#       hvitgan-tf train --data pcam-h5:/data/pcam --preset pcam96 --out runs/pcam
#   docker run --gpus all -v $PWD/saved_models:/work/saved_models -v $PWD/synthetic:/work/synthetic \
#       hvitgan-tf sample --per-class 500 --threshold 0.8 --format tfrecord --out synthetic
# The Beam sampler is in the image too (the `beam` extra):
#   docker run ... --entrypoint python hvitgan-tf -m pipelines.beam_sample --per-class 500 --out synthetic
# Add `--user $(id -u):$(id -g)` to own the files written into the mounted folders.
# Not built or run where this was written (no Docker engine there); see README "Scaling out".
FROM tensorflow/tensorflow:2.21.0-gpu

ENV PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    TF_CPP_MIN_LOG_LEVEL=2

WORKDIR /opt/hvitgan-tf
COPY setup.py README.md ./
COPY hvitgan_tf ./hvitgan_tf
COPY pipelines ./pipelines
# The image already holds tensorflow 2.21; pip keeps it and adds the rest.
RUN pip install ".[beam]" \
    && hvitgan-tf --version \
    && python -c "import pipelines.beam_sample, pipelines.beam_generation"

WORKDIR /work
ENTRYPOINT ["hvitgan-tf"]
CMD ["--help"]
