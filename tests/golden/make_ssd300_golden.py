"""Write `ssd300_voc_state_dict.json`: every key and shape of ssd.pytorch's SSD300, in order.

Why: the converter (`transfer.backbones.convert`) derives ssd.pytorch's key names by walking
our Keras SSD300.  Checked against a table written by the same hands, a wrong derivation could
pass.  This script is the independent side: it imports nothing from this repository and builds
the network from torch's own `nn.Conv2d` / `nn.MaxPool2d` / `nn.ReLU` in the structure of
amdegroot/ssd.pytorch (commit 5b0b77f, `ssd.py`: `vgg()`, `add_extras()`, `multibox()`,
`SSD.__init__` and `SSD.forward` in phase "train"; `layers/modules/l2norm.py`), so that
`build_ssd300_torch(21).state_dict()` has the keys of `build_ssd('train', 300, 21)`.

Tests import this module (torch installed) to regenerate the golden file and compare, and to
run the torch network against the converted Keras one.

Run: `python tests/golden/make_ssd300_golden.py` (needs torch; rewrites the JSON beside it).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

GOLDEN_PATH = Path(__file__).with_name("ssd300_voc_state_dict.json")

#: ssd.pytorch's configuration for size 300: base-net channels with pools ("M" floor, "C"
#: ceil mode), extras ("S": the next conv has stride 2 and padding 1), boxes per location.
BASE = (64, 64, "M", 128, 128, "M", 256, 256, 256, "C", 512, 512, 512, "M", 512, 512, 512)
EXTRAS = (256, "S", 512, 128, "S", 256, 128, 256, 128, 256)
BOXES = (4, 6, 6, 6, 4, 4)
#: `vgg` runs up to here (exclusive) before L2Norm taps conv4_3 after its ReLU.
CONV4_3_END = 23


def vgg_layers() -> list[nn.Module]:
    """The `vgg` ModuleList: every conv is followed by its own ReLU module; pool5, conv6, conv7."""
    layers: list[nn.Module] = []
    channels = 3
    for item in BASE:
        if item in ("M", "C"):
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2, ceil_mode=item == "C"))
            continue
        layers += [nn.Conv2d(channels, item, kernel_size=3, padding=1), nn.ReLU()]
        channels = item
    layers.append(nn.MaxPool2d(kernel_size=3, stride=1, padding=1))  # pool5
    layers += [nn.Conv2d(512, 1024, kernel_size=3, padding=6, dilation=6), nn.ReLU()]  # conv6
    layers += [nn.Conv2d(1024, 1024, kernel_size=1), nn.ReLU()]  # conv7
    return layers


def extra_layers() -> list[nn.Conv2d]:
    """The `extras` ModuleList: convs only (forward applies ReLU as a function), 1x1 / 3x3 in turn."""
    layers: list[nn.Conv2d] = []
    channels, items = 1024, iter(EXTRAS)
    for item in items:
        kernel = 1 if len(layers) % 2 == 0 else 3
        out, stride, padding = (next(items), 2, 1) if item == "S" else (item, 1, 0)
        layers.append(nn.Conv2d(channels, out, kernel_size=kernel, stride=stride, padding=padding))
        channels = out
    return layers


def head_layers(vgg: list[nn.Module], extras: list[nn.Conv2d], num_classes: int):
    """`loc` and `conf` 3x3 convs, one per source: conv4_3, conv7, then every second extra."""
    sources = [vgg[CONV4_3_END - 2], vgg[-2], *extras[1::2]]
    loc = [nn.Conv2d(s.out_channels, b * 4, kernel_size=3, padding=1) for s, b in zip(sources, BOXES)]
    conf = [nn.Conv2d(s.out_channels, b * num_classes, kernel_size=3, padding=1) for s, b in zip(sources, BOXES)]
    return loc, conf


class L2Norm(nn.Module):
    """ParseNet scaling of conv4_3: `x / (||x||_channels + 1e-10) * weight`, weight initialised to 20."""

    def __init__(self, channels: int = 512, scale: float = 20.0) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.full((channels,), scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        norm = x.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10
        return x / norm * self.weight[None, :, None, None]


class SSD300(nn.Module):
    """Attributes registered in ssd.pytorch's order (vgg, L2Norm, extras, loc, conf): that order
    is the state dict's order.  `forward` returns the "train" phase's raw `(loc, conf)`."""

    def __init__(self, num_classes: int = 21) -> None:
        super().__init__()
        vgg, extras = vgg_layers(), extra_layers()
        loc, conf = head_layers(vgg, extras, num_classes)
        self.num_classes = num_classes
        self.vgg = nn.ModuleList(vgg)
        self.L2Norm = L2Norm()
        self.extras = nn.ModuleList(extras)
        self.loc = nn.ModuleList(loc)
        self.conf = nn.ModuleList(conf)

    def sources(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The six maps the heads read."""
        for layer in self.vgg[:CONV4_3_END]:
            x = layer(x)
        found = [self.L2Norm(x)]
        for layer in self.vgg[CONV4_3_END:]:
            x = layer(x)
        found.append(x)
        for k, layer in enumerate(self.extras):
            x = torch.relu(layer(x))
            if k % 2 == 1:
                found.append(x)
        return found

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        sources = self.sources(x)
        batch = x.shape[0]

        def flat(heads: nn.ModuleList, width: int) -> torch.Tensor:  # NHWC order, as ssd.pytorch
            return torch.cat([h(s).permute(0, 2, 3, 1).reshape(batch, -1, width) for h, s in zip(heads, sources)], 1)

        return flat(self.loc, 4), flat(self.conf, self.num_classes)


def build_ssd300_torch(num_classes: int = 21) -> SSD300:
    """ssd.pytorch's `build_ssd('train', 300, num_classes)` network, default-initialised."""
    return SSD300(num_classes)


def state_dict_shapes(num_classes: int = 21) -> list[list]:
    """`[[key, shape], ...]` of the network's state dict, in its order."""
    return [[key, list(tensor.shape)] for key, tensor in build_ssd300_torch(num_classes).state_dict().items()]


def golden_document() -> dict:
    """What the golden file holds."""
    return {
        "what": "ssd.pytorch build_ssd('train', 300, 21).state_dict(): [key, shape] in order (OIHW kernels)",
        "generated_by": "tests/golden/make_ssd300_golden.py",
        "state_dict": state_dict_shapes(21),
    }


def to_json(document: dict) -> str:
    """JSON with one `[key, shape]` per line, so a change reads as a one-line diff."""
    rows = ",\n".join(f"  {json.dumps(row)}" for row in document["state_dict"])
    head = ",\n".join(f" {json.dumps(k)}: {json.dumps(v)}" for k, v in document.items() if k != "state_dict")
    return f'{{\n{head},\n "state_dict": [\n{rows}\n ]\n}}\n'


def main() -> None:
    GOLDEN_PATH.write_text(to_json(golden_document()))
    print(f"wrote {GOLDEN_PATH}")


if __name__ == "__main__":
    main()
