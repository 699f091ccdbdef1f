"""The architectures a job may ask for, built from scratch (no weights are ever downloaded)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torchvision.models import mobilenet_v3_small, resnet18
from torchvision.models.detection import (
    fasterrcnn_mobilenet_v3_large_320_fpn,
    ssdlite320_mobilenet_v3_large,
)

from stek.training.schema import Architecture


def _mobilenet_v3_small(classes: int, image_size: int) -> nn.Module:
    return mobilenet_v3_small(weights=None, num_classes=classes)


def _resnet18(classes: int, image_size: int) -> nn.Module:
    return resnet18(weights=None, num_classes=classes)


def _ssdlite(classes: int, image_size: int) -> nn.Module:
    # torchvision's detectors count the background as class 0.
    model = ssdlite320_mobilenet_v3_large(
        weights=None, weights_backbone=None, num_classes=classes + 1
    )
    # The anchors follow the feature maps, so the fixed input can be smaller than 320
    # for fast CPU runs; images are resized to it inside the model.
    model.transform.fixed_size = (image_size, image_size)
    return model


def _fasterrcnn(classes: int, image_size: int) -> nn.Module:
    # Fewer proposals than the torchvision defaults: the line's images hold a handful of
    # objects, and the defaults make a CPU step several times slower.
    return fasterrcnn_mobilenet_v3_large_320_fpn(
        weights=None,
        weights_backbone=None,
        num_classes=classes + 1,
        min_size=image_size,
        max_size=image_size,
        rpn_pre_nms_top_n_train=300,
        rpn_post_nms_top_n_train=150,
        rpn_pre_nms_top_n_test=150,
        rpn_post_nms_top_n_test=100,
        box_batch_size_per_image=128,
    )


BUILDERS: dict[Architecture, Callable[[int, int], nn.Module]] = {
    Architecture.MOBILENET_V3_SMALL: _mobilenet_v3_small,
    Architecture.RESNET18: _resnet18,
    Architecture.SSDLITE320_MOBILENET_V3_LARGE: _ssdlite,
    Architecture.FASTERRCNN_MOBILENET_V3_LARGE_320_FPN: _fasterrcnn,
}


def build_model(architecture: Architecture, classes: int, image_size: int) -> nn.Module:
    model = BUILDERS[architecture](classes, image_size)
    _quicker_batch_norm(model)
    return model


def _quicker_batch_norm(model: nn.Module) -> None:
    # MobileNetV3 and SSDlite keep batch-norm running statistics with momentum 0.01-0.03,
    # tuned for ImageNet-long runs. A short run from scratch then evaluates with statistics
    # still close to their initial values and predicts one class. 0.1 (PyTorch's default)
    # settles within a few dozen steps.
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.momentum is not None:
            module.momentum = max(module.momentum, 0.1)


def load_user_weights(model: nn.Module, state: dict[str, torch.Tensor]) -> list[str]:
    """Load the tensors whose names and shapes fit; returns the names left at random init.

    A user's weights often come from a model with another number of classes: its head does
    not fit and is trained from scratch, everything else starts from the user's values.
    """
    own = model.state_dict()
    fitting = {
        name: tensor
        for name, tensor in state.items()
        if name in own and own[name].shape == tensor.shape
    }
    if not fitting:
        raise ValueError("none of the tensors in the weights file fit this architecture")
    model.load_state_dict(fitting, strict=False)
    return sorted(set(own) - set(fitting))
