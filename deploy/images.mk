# deploy/images.mk: container image targets, meant to be included by the top-level Makefile:
#
#     include deploy/images.mk
#
# and usable alone: make -f deploy/images.mk images
#
#   make images                        every service image plus the demo receiver: casekeeper/<name>:dev
#   make image-case                    one image
#   make images IMAGE_REGISTRY=ghcr.io/casekeeper IMAGE_TAG=0.1.0
#   make images DOCKER_BUILD_FLAGS='--platform linux/arm64'
#
# Every service image builds from the one Dockerfile at the repository root, with SERVICE=<name> and the repository
# root as its context (it needs the go.work workspace). The demo receiver, a standalone module, has its own.
# Needs a running Docker engine (or a compatible CLI via DOCKER=podman): the targets stop with a clear message when
# there is none.

# The repository root, wherever make was started from and whichever Makefile included this one.
IMAGES_ROOT := $(abspath $(dir $(abspath $(lastword $(MAKEFILE_LIST))))..)

# Keep the including Makefile's default goal: targets defined here must not become it (see the end of the file).
_images_mk := $(lastword $(MAKEFILE_LIST))
_images_saved_default_goal := $(.DEFAULT_GOAL)

DOCKER ?= docker
IMAGE_REGISTRY ?= casekeeper
IMAGE_TAG ?= dev
DOCKER_BUILD_FLAGS ?=
# The services the Dockerfile builds (a stage per service; --build-arg SERVICE=<name> picks it).
IMAGE_SERVICES ?= case webhook gateway devserver

.PHONY: images images-check image-demo-receiver $(addprefix image-,$(IMAGE_SERVICES))

images: $(addprefix image-,$(IMAGE_SERVICES)) image-demo-receiver

# `docker info` fails without a reachable engine even when the CLI is installed (no daemon, no socket access).
images-check:
	@command -v $(DOCKER) >/dev/null 2>&1 || { \
	  echo "images: '$(DOCKER)' not found: building images needs Docker (or DOCKER=<compatible CLI>)." >&2; exit 1; }
	@$(DOCKER) info >/dev/null 2>&1 || { \
	  echo "images: no Docker engine reachable ('$(DOCKER) info' failed): start the Docker daemon, or check DOCKER_HOST and access to its socket." >&2; exit 1; }

$(addprefix image-,$(IMAGE_SERVICES)): image-%: images-check
	DOCKER_BUILDKIT=1 $(DOCKER) build $(DOCKER_BUILD_FLAGS) \
	  -f $(IMAGES_ROOT)/Dockerfile --build-arg SERVICE=$* \
	  -t $(IMAGE_REGISTRY)/$*:$(IMAGE_TAG) \
	  $(IMAGES_ROOT)

image-demo-receiver: images-check
	DOCKER_BUILDKIT=1 $(DOCKER) build $(DOCKER_BUILD_FLAGS) \
	  -t $(IMAGE_REGISTRY)/demo-receiver:$(IMAGE_TAG) \
	  $(IMAGES_ROOT)/examples/demo-receiver

# Alone (make -f deploy/images.mk), `images` is the default; included, the including Makefile's goal stays.
ifeq ($(_images_saved_default_goal)$(filter-out $(_images_mk),$(MAKEFILE_LIST)),)
.DEFAULT_GOAL := images
else
.DEFAULT_GOAL := $(_images_saved_default_goal)
endif
