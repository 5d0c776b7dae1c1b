# syntax=docker/dockerfile:1
# The flashvqa image: Ray, the `services` package and its CLI, no model weights (a volume brings them).
#   docker build -t flashvqa:0.1.0 .
#   docker build --build-arg BASE_IMAGE=nvidia/cuda:12.6.3-base-ubuntu24.04 -t flashvqa:0.1.0 .
#   docker build --build-arg BASE_IMAGE=ubuntu:24.04 \
#     --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu -t flashvqa:0.1.0-cpu .
# The torch wheels bring their own CUDA libraries, so a `-base` CUDA image (driver compatibility only) is
# enough; the node's NVIDIA driver is mounted by the container toolkit.

ARG BASE_IMAGE=nvidia/cuda:12.8.1-base-ubuntu24.04
ARG PYTHON_VERSION=3.11
ARG UV_VERSION=0.9.5

FROM ghcr.io/astral-sh/uv:${UV_VERSION} AS uv

# --- build: a relocatable CPython and a virtual environment with the package, in /opt ---
FROM ${BASE_IMAGE} AS build
ARG PYTHON_VERSION
ARG TORCH_INDEX_URL=""
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_PYTHON_INSTALL_DIR=/opt/python \
    UV_LINK_MODE=copy \
    UV_COMPILE_BYTECODE=1 \
    UV_NO_CACHE=1
RUN uv python install ${PYTHON_VERSION} && uv venv --python ${PYTHON_VERSION} /opt/venv
WORKDIR /src
# Dependencies first (a layer that changes only with pyproject.toml), then the package itself.
COPY pyproject.toml README.md ./
RUN mkdir services && touch services/__init__.py \
    && if [ -n "$TORCH_INDEX_URL" ]; then export UV_INDEX="$TORCH_INDEX_URL"; fi \
    && uv pip install --python /opt/venv/bin/python . \
    && uv pip uninstall --python /opt/venv/bin/python flashvqa
COPY serve_config.yaml ./
COPY services ./services
RUN uv pip install --python /opt/venv/bin/python --no-deps . \
    && /opt/venv/bin/python -c "import services.app_builder, services.serve_config as c; c.load_application()"

# --- runtime: the base image, the interpreter, the environment, a non-root user ---
FROM ${BASE_IMAGE} AS runtime
# bash and wget: KubeRay's start command (`bash -lc`, hence the profile.d PATH) and probes use them;
# tini reaps processes under `docker run`.
RUN apt-get update \
    && apt-get install -y --no-install-recommends bash wget ca-certificates tini \
    && rm -rf /var/lib/apt/lists/* \
    && (userdel -r ubuntu 2>/dev/null || true) \
    && groupadd --gid 1000 flashvqa \
    && useradd --uid 1000 --gid 1000 --create-home --shell /bin/bash flashvqa \
    && echo 'export PATH=/opt/venv/bin:$PATH' > /etc/profile.d/flashvqa.sh
COPY --from=build /opt/python /opt/python
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HF_HUB_OFFLINE=1 \
    MODEL_PATH=/models/model
USER 1000:1000
WORKDIR /home/flashvqa
EXPOSE 8000 8080
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["flashvqa", "--help"]
