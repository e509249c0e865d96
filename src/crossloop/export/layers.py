"""Export emitters for the image and dense layers: convolution, dense, activations,
pooling, flatten, dropout.

Here the frameworks differ in layout (OIHW vs HWIO kernels, (out, in) vs (in, out)
dense weights, NCHW vs NHWC activations and so flatten order) and in what
``"same"`` padding means at stride 2; each emitter says so where it shows.
"""

from __future__ import annotations

from .. import nn
from .emitter import Emitter, Site, keras_args


def _stride(layer: nn.MaxPool2d | nn.AvgPool2d) -> str:
    return "" if layer.stride is None else f", stride={layer.stride}"


def _keras_stride(layer: nn.MaxPool2d | nn.AvgPool2d) -> str:
    return "" if layer.stride is None else f", strides={layer.stride}"


def _same(layer: nn.Conv2d) -> bool:
    """Whether Keras's ``"same"`` pads as torch's symmetric ``padding`` does."""
    return layer.padding == "same" or (layer.stride == 1 and 2 * layer.padding == layer.kernel_size - 1)


def _conv_torch(site: Site) -> str:
    c = site.layer
    stride = f", stride={c.stride}" if c.stride != 1 else ""  # torch's defaults left out
    padding = f", padding={c.padding!r}" if c.padding else ""
    bias = "" if c.bias else ", bias=False"
    return (f"nn.Conv2d({c.in_channels}, {c.out_channels}, kernel_size={c.kernel_size}"
            f"{stride}{padding}{bias})")


def _conv_keras(site: Site) -> list[str]:
    c = site.layer
    strides = f", strides={c.stride}" if c.stride != 1 else ""
    bias = "" if c.bias else ", use_bias=False"
    conv = f"layers.Conv2D({c.out_channels}, {c.kernel_size}{strides}, padding="
    if c.padding and _same(c):
        return [conv + f'"same"{bias}, {keras_args(site)})']
    pad = ([f'layers.ZeroPadding2D({c.padding}, {keras_args(site, site.name + "_pad")})']
           if c.padding else [])
    return pad + [conv + f'"valid"{bias}, {keras_args(site)})']


def _conv_note(site: Site) -> str:
    c = site.layer
    if not c.padding:
        return ""
    if _same(c):
        return (f"torch padding={c.padding!r} with a {c.kernel_size}x{c.kernel_size} kernel at "
                'stride 1 is Keras\'s "same"')
    return ('explicit zero padding, as torch\'s: Keras\'s "same" would pad asymmetrically '
            "(more after) at stride > 1")


def _bias(site: Site) -> str:
    return f', state["{site.path}.bias"]' if site.layer.bias else ""


def _conv_weights(site: Site) -> list[str]:
    i = site.path
    return [f"# {i}: kernel torch (out, in, kH, kW) -> Keras (kH, kW, in, out)",
            f'model.get_layer("{site.name}").set_weights([state["{i}.weight"].transpose(2, 3, 1, 0)'
            f"{_bias(site)}])"]


def _linear_weights(site: Site) -> list[str]:
    i, lin = site.path, site.layer
    if site.flatten_source is None:
        return [f"# {i}: weight torch (out, in) -> Keras (in, out)",
                f'model.get_layer("{site.name}").set_weights([state["{i}.weight"].T{_bias(site)}])']
    c, h, w = site.flatten_source
    return [f"# {i}: torch flattened (C, H, W) = ({c}, {h}, {w}), Keras flattens (H, W, C):",
            "# reorder the weight's inputs, then (out, in) -> (in, out)",
            f'w = state["{i}.weight"].reshape({lin.out_features}, {c}, {h}, {w})'
            f".transpose(0, 2, 3, 1).reshape({lin.out_features}, {lin.in_features})",
            f'model.get_layer("{site.name}").set_weights([w.T{_bias(site)}])']


def last_axis_on_images(site: Site) -> str:
    """Why a last-axis layer (Linear, LayerNorm) on (C, H, W) activations is not
    exported: torch applies it to W, and the Keras model runs NHWC."""
    return ("it acts on the last axis (W) of a (C, H, W) activation, which the Keras "
            "model holds as (H, W, C)") if len(site.in_shape) == 3 else ""


def _linear_torch(site: Site) -> str:
    lin = site.layer
    return f"nn.Linear({lin.in_features}, {lin.out_features}{'' if lin.bias else ', bias=False'})"


def _linear_keras(site: Site) -> list[str]:
    lin = site.layer
    return [f"layers.Dense({lin.out_features}{'' if lin.bias else ', use_bias=False'}, "
            f"{keras_args(site)})"]


def _permuted(site: Site) -> bool:
    """Whether a Flatten of an image must put torch's (C, H, W) order itself: its vector
    does not go into a Dense whose weights load_weights can reorder."""
    return len(site.in_shape) == 3 and site.flatten_source is None


def _flatten_keras(site: Site) -> list[str]:
    permute = ([f'layers.Permute((3, 1, 2), {keras_args(site, site.name + "_chw")})']
               if _permuted(site) else [])
    return permute + [f"layers.Flatten({keras_args(site)})"]


def _flatten_note(site: Site) -> str:
    if len(site.in_shape) != 3:
        return ""
    if _permuted(site):
        return ("Keras flattens (H, W, C), torch (C, H, W); no Dense follows whose weights "
                "could be reordered, so channels move first before flattening")
    return "flattens (H, W, C), torch (C, H, W): load_weights reorders the next Dense's inputs"


_ACTIVATIONS = {nn.Tanh: "tanh", nn.Sigmoid: "sigmoid", nn.SiLU: "silu"}

LAYER_EMITTERS: dict[type, Emitter] = {
    nn.Conv2d: Emitter("conv", torch=_conv_torch, keras=_conv_keras, weights=_conv_weights,
                       note=_conv_note),
    nn.Linear: Emitter("dense", torch=_linear_torch, keras=_linear_keras,
                       weights=_linear_weights, refuse=last_axis_on_images),
    nn.ReLU: Emitter("relu", torch=lambda s: "nn.ReLU()",
                     keras=lambda s: [f"layers.ReLU({keras_args(s)})"]),
    **{cls: Emitter(name, torch=lambda s: f"nn.{type(s.layer).__name__}()",
                    keras=lambda s: [f'layers.Activation("{_ACTIVATIONS[type(s.layer)]}", '
                                     f"{keras_args(s)})"])
       for cls, name in _ACTIVATIONS.items()},
    nn.MaxPool2d: Emitter(
        "maxpool", torch=lambda s: f"nn.MaxPool2d({s.layer.kernel_size}{_stride(s.layer)})",
        keras=lambda s: [f"layers.MaxPooling2D({s.layer.kernel_size}{_keras_stride(s.layer)}, "
                         f"{keras_args(s)})"]),
    nn.AvgPool2d: Emitter(
        "avgpool", torch=lambda s: f"nn.AvgPool2d({s.layer.kernel_size}{_stride(s.layer)})",
        keras=lambda s: [f"layers.AveragePooling2D({s.layer.kernel_size}"
                         f"{_keras_stride(s.layer)}, {keras_args(s)})"]),
    nn.GlobalAvgPool2d: Emitter(
        "pool", torch=lambda s: "GlobalAvgPool2d()",
        keras=lambda s: [f"layers.GlobalAveragePooling2D({keras_args(s)})"],
        helpers=('''class GlobalAvgPool2d(nn.Module):
    """(N, C, H, W) -> (N, C): the mean over H and W (Keras: GlobalAveragePooling2D)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean((2, 3))
''', "")),
    nn.Flatten: Emitter("flatten", torch=lambda s: "nn.Flatten()", keras=_flatten_keras,
                        note=_flatten_note),
    nn.Dropout: Emitter(
        "dropout", torch=lambda s: f"nn.Dropout(p={s.layer.p})",
        keras=lambda s: [f"layers.Dropout({s.layer.p}, {keras_args(s)})"],
        note=lambda s: "masks come from Keras's random generator, not torch's: identical "
                       "only in inference (or with p=0)"),
}
