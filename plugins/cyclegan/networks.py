"""CycleGAN networks: the reference ResNet and U-Net generators, a light generator, PatchGAN.

``ResnetGenerator``, ``UnetGenerator`` and ``NLayerDiscriminator`` reproduce the layer order
of junyanz/pytorch-CycleGAN-and-pix2pix (instance norm without affine parameters, biases on
every conv), so their ``state_dict`` keys and parameter counts match the reference and its
published checkpoints (``latest_net_G_A.pth``...) load with ``load_state_dict``.

Every network is free of Python control flow on tensor shapes, so it exports to ONNX with
dynamic batch, height and width.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


def _norm(channels: int) -> nn.Module:
    # The reference's "instance" norm: no affine parameters and no running statistics.
    return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)


class ResnetBlock(nn.Module):
    """Two reflection-padded 3x3 convolutions with a skip connection."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(dim, dim, kernel_size=3, padding=0, bias=True),
            _norm(dim),
            nn.ReLU(True),
            nn.ReflectionPad2d(1),
            nn.Conv2d(dim, dim, kernel_size=3, padding=0, bias=True),
            _norm(dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


class ResizeConv(nn.Module):
    """x2 nearest-neighbour upsampling, then a 3x3 convolution: an upsampling without the
    checkerboard pattern that transposed convolutions leave until long training evens
    their kernel overlap out (Odena, Dumoulin, Olah 2016, "Deconvolution and
    Checkerboard Artifacts")."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.pad = nn.ReflectionPad2d(1)
        self.conv = nn.Conv2d(in_ch, out_ch, kernel_size=3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.pad(self.up(x)))


#: The generators' ways to double their resolution: the reference's transposed
#: convolution, or :class:`ResizeConv`.
UPSAMPLERS = ("transpose", "resize")


def upsampler(in_ch: int, out_ch: int, kind: str) -> nn.Module:
    if kind == "resize":
        return ResizeConv(in_ch, out_ch)
    return nn.ConvTranspose2d(in_ch, out_ch, 3, stride=2, padding=1, output_padding=1)


class ResnetGenerator(nn.Module):
    """The CycleGAN generator: c7s1-ngf, two stride-2 downsamplings, residual blocks at 1/4
    resolution, two transposed-conv upsamplings, c7s1-3 and tanh.

    Height and width must be multiples of 4 (:attr:`size_multiple`).
    """

    size_multiple = 4

    def __init__(self, in_ch: int = 3, out_ch: int = 3, ngf: int = 64, n_blocks: int = 9,
                 upsample: str = "transpose") -> None:
        super().__init__()
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(in_ch, ngf, kernel_size=7, padding=0, bias=True),
            _norm(ngf),
            nn.ReLU(True),
        ]
        for i in range(2):
            mult = 2**i
            layers += [
                nn.Conv2d(ngf * mult, ngf * mult * 2, kernel_size=3, stride=2, padding=1),
                _norm(ngf * mult * 2),
                nn.ReLU(True),
            ]
        layers += [ResnetBlock(ngf * 4) for _ in range(n_blocks)]
        for i in range(2):
            mult = 2 ** (2 - i)
            layers += [
                upsampler(ngf * mult, ngf * mult // 2, upsample),
                _norm(ngf * mult // 2),
                nn.ReLU(True),
            ]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, out_ch, kernel_size=7, padding=0)]
        layers += [nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def _batch_norm(channels: int) -> nn.Module:
    # The reference's "batch" norm (pix2pix): affine, with running statistics.
    return nn.BatchNorm2d(channels)


@dataclass(frozen=True)
class LevelOptions:
    """How a U-Net level normalises: ``batch_norm`` swaps instance norm for batch norm and,
    as the reference does, drops the biases of the convolutions a norm follows (batch
    norm's shift replaces them); ``dropout`` adds the reference's ``Dropout(0.5)`` after a
    middle level's upsampling."""

    batch_norm: bool = False
    dropout: bool = False


class UnetSkipConnectionBlock(nn.Module):
    """One U-Net level: downsample, the inner levels, upsample; concatenated with the input
    (except at the outermost level)."""

    def __init__(
        self,
        outer_nc: int,
        inner_nc: int,
        input_nc: int | None = None,
        submodule: nn.Module | None = None,
        outermost: bool = False,
        innermost: bool = False,
        options: LevelOptions = LevelOptions(),
    ) -> None:
        super().__init__()
        self.outermost = outermost
        norm, bias = (_batch_norm, False) if options.batch_norm else (_norm, True)
        input_nc = outer_nc if input_nc is None else input_nc
        downconv = nn.Conv2d(input_nc, inner_nc, kernel_size=4, stride=2, padding=1, bias=bias)
        downrelu = nn.LeakyReLU(0.2, True)
        uprelu = nn.ReLU(True)
        layers: list[nn.Module]
        if outermost:
            upconv = nn.ConvTranspose2d(inner_nc * 2, outer_nc, kernel_size=4, stride=2, padding=1)
            assert submodule is not None
            layers = [downconv, submodule, uprelu, upconv, nn.Tanh()]
        elif innermost:
            # No norm after the innermost down conv: its output may be 1x1.
            upconv = nn.ConvTranspose2d(inner_nc, outer_nc, 4, stride=2, padding=1, bias=bias)
            layers = [downrelu, downconv, uprelu, upconv, norm(outer_nc)]
        else:
            upconv = nn.ConvTranspose2d(inner_nc * 2, outer_nc, 4, stride=2, padding=1, bias=bias)
            assert submodule is not None
            layers = [downrelu, downconv, norm(inner_nc), submodule]
            layers += [uprelu, upconv, norm(outer_nc)]
            layers += [nn.Dropout(0.5)] if options.dropout else []
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.outermost:
            return self.model(x)
        return torch.cat([x, self.model(x)], 1)


class UnetGenerator(nn.Module):
    """The pix2pix/CycleGAN U-Net: ``num_downs`` stride-2 levels (8: UNet-256, 7: UNet-128).

    Height and width must be multiples of ``2**num_downs`` (:attr:`size_multiple`).
    CycleGAN's has instance norm; pix2pix's (``batch_norm``, ``dropout``) batch norm and
    dropout in the ``ngf * 8`` levels between the innermost and the four outer ones, as
    the reference's ``--norm batch`` without ``--no_dropout``.
    """

    def __init__(self, in_ch: int = 3, out_ch: int = 3, num_downs: int = 8, ngf: int = 64,
                 batch_norm: bool = False, dropout: bool = False) -> None:
        super().__init__()
        if num_downs < 5:
            raise ValueError(f"a U-Net needs at least 5 downsamplings, got {num_downs}")
        self.size_multiple = 2**num_downs
        plain = LevelOptions(batch_norm)
        block = UnetSkipConnectionBlock(ngf * 8, ngf * 8, innermost=True, options=plain)
        for _ in range(num_downs - 5):
            block = UnetSkipConnectionBlock(ngf * 8, ngf * 8, submodule=block,
                                            options=LevelOptions(batch_norm, dropout))
        for outer in (4, 2, 1):
            block = UnetSkipConnectionBlock(ngf * outer, ngf * outer * 2, submodule=block,
                                            options=plain)
        self.model = UnetSkipConnectionBlock(
            out_ch, ngf, input_nc=in_ch, submodule=block, outermost=True, options=plain
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class SeparableResnetBlock(nn.Module):
    """A residual block whose 3x3 convolutions are depthwise 3x3 + pointwise 1x1.

    Per pixel it costs ``2 * (9 C + C^2)`` multiply-adds instead of ``2 * 9 C^2``: about 8x
    less than a :class:`ResnetBlock` at 128 channels.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(dim, dim, kernel_size=3, groups=dim, bias=False),
            nn.Conv2d(dim, dim, kernel_size=1, bias=True),
            _norm(dim),
            nn.ReLU(True),
            nn.ReflectionPad2d(1),
            nn.Conv2d(dim, dim, kernel_size=3, groups=dim, bias=False),
            nn.Conv2d(dim, dim, kernel_size=1, bias=True),
            _norm(dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


class MobileResnetGenerator(nn.Module):
    """A light CycleGAN generator for live video on a CPU.

    The ResNet generator's layout (c7s1, two stride-2 downsamplings, residual blocks at 1/4
    resolution, two transposed-conv upsamplings, c7s1 and tanh) with narrow full-resolution
    layers (``ngf`` = 16 by default) and depthwise-separable residual blocks at ``8 * ngf``
    channels. With the defaults (9 blocks) it costs about 2 G conv multiply-adds per 256x256
    frame, against 57 G for the reference ResNet-9. Height and width must be multiples of 4.
    """

    size_multiple = 4

    def __init__(self, in_ch: int = 3, out_ch: int = 3, ngf: int = 16, n_blocks: int = 9,
                 upsample: str = "transpose") -> None:
        super().__init__()
        c1, c2, c3 = ngf, ngf * 2, ngf * 8
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(in_ch, c1, kernel_size=7, bias=True),
            _norm(c1),
            nn.ReLU(True),
            nn.Conv2d(c1, c2, kernel_size=3, stride=2, padding=1),
            _norm(c2),
            nn.ReLU(True),
            nn.Conv2d(c2, c3, kernel_size=3, stride=2, padding=1),
            _norm(c3),
            nn.ReLU(True),
        ]
        layers += [SeparableResnetBlock(c3) for _ in range(n_blocks)]
        # Transposed convs cost multiply-adds per *input* pixel: cheaper than upsample + conv.
        layers += [
            upsampler(c3, c2, upsample),
            _norm(c2),
            nn.ReLU(True),
            upsampler(c2, c1, upsample),
            _norm(c1),
            nn.ReLU(True),
            nn.ReflectionPad2d(3),
            nn.Conv2d(c1, out_ch, kernel_size=7),
            nn.Tanh(),
        ]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class NLayerDiscriminator(nn.Module):
    """The PatchGAN discriminator; ``n_layers=3`` gives 70x70 receptive fields. ``in_ch``
    6 and ``batch_norm`` make pix2pix's conditional one, which judges (input, output) pairs.

    Returns one logit per patch, ``[N, 1, H/8 - 2, W/8 - 2]`` for ``n_layers=3``.
    """

    def __init__(self, in_ch: int = 3, ndf: int = 64, n_layers: int = 3,
                 batch_norm: bool = False) -> None:
        super().__init__()
        kw, padw = 4, 1
        # As in the generator: batch norm replaces the biases of the convolutions it follows.
        norm, bias = (_batch_norm, False) if batch_norm else (_norm, True)
        layers: list[nn.Module] = [
            nn.Conv2d(in_ch, ndf, kernel_size=kw, stride=2, padding=padw),
            nn.LeakyReLU(0.2, True),
        ]
        mult = 1
        for n in range(1, n_layers):
            prev, mult = mult, min(2**n, 8)
            layers += [
                nn.Conv2d(ndf * prev, ndf * mult, kernel_size=kw, stride=2, padding=padw,
                          bias=bias),
                norm(ndf * mult),
                nn.LeakyReLU(0.2, True),
            ]
        prev, mult = mult, min(2**n_layers, 8)
        layers += [
            nn.Conv2d(ndf * prev, ndf * mult, kernel_size=kw, stride=1, padding=padw, bias=bias),
            norm(ndf * mult),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf * mult, 1, kernel_size=kw, stride=1, padding=padw),
        ]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def count_parameters(module: nn.Module) -> int:
    """Number of parameters (trainable or not)."""
    return sum(p.numel() for p in module.parameters())


def count_conv_macs(module: nn.Module, height: int, width: int, in_ch: int = 3) -> int:
    """Multiply-adds of the conv and transposed-conv layers for one ``height x width`` image.

    Norms, activations, padding and additions are not counted (they are a few percent).
    A conv costs ``out_elements * in_ch / groups * kh * kw``; a transposed conv costs
    ``in_elements * out_ch / groups * kh * kw``. Runs on the ``meta`` device (no memory, no
    arithmetic); a module built on another device is copied there first.
    """
    import copy

    macs = 0

    def conv_hook(m: nn.Conv2d, inputs: tuple[torch.Tensor], out: torch.Tensor) -> None:
        nonlocal macs
        kh, kw = m.kernel_size
        macs += out.numel() * (m.in_channels // m.groups) * kh * kw

    def tconv_hook(m: nn.ConvTranspose2d, inputs: tuple[torch.Tensor], out: torch.Tensor) -> None:
        nonlocal macs
        kh, kw = m.kernel_size
        macs += inputs[0].numel() * (m.out_channels // m.groups) * kh * kw

    meta = module
    if any(p.device.type != "meta" for p in module.parameters()):
        meta = copy.deepcopy(module).to("meta")
    handles = []
    for m in meta.modules():
        if isinstance(m, nn.Conv2d):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.ConvTranspose2d):
            handles.append(m.register_forward_hook(tconv_hook))
    try:
        with torch.no_grad():
            meta(torch.empty(1, in_ch, height, width, device="meta"))
    finally:
        for h in handles:
            h.remove()
    return macs
