"""Which fast backbone: a MobileNetV2-style net against narrow ResNets, measured back to back.

    OMP_NUM_THREADS=1 PYTHONPATH=. python3 scripts/backbone_candidates.py

Prints, per candidate, the forward GFLOP of one 100 x 120 crop, training samples/s (bf16
autocast, channels-last, SGD, batch 32, as ``tapcheck bench`` times tapcheck's loop) and the best
bf16 inference time of a clip's two crops. The study's ResNet18 runs in the same process as the
yardstick. Only ``lite`` (narrow ResNet, stride-2 stem, 32-256) was registered: see
docs/fast-model.md for the figures of one run.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tapcheck.models.backbones import LiteResNet, ResNet18  # noqa: E402


class InvertedResidual(nn.Module):
    """MobileNetV2's block (Sandler et al. 2018): 1x1 expand, 3x3 depthwise, 1x1 project."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int):
        super().__init__()
        hidden = cin * expand
        self.residual = stride == 1 and cin == cout
        layers = []
        if expand != 1:
            layers += [nn.Conv2d(cin, hidden, 1, bias=False), nn.BatchNorm2d(hidden),
                       nn.ReLU6(inplace=True)]
        layers += [nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False),
                   nn.BatchNorm2d(hidden), nn.ReLU6(inplace=True),
                   nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.conv(x) if self.residual else self.conv(x)


class MobileNetV2ish(nn.Module):
    """MobileNetV2's first stages (expansion 6, its (t, c, n, s) table cut at 160 channels)."""

    def __init__(self, embedding_dim: int = 128):
        super().__init__()
        layers, c = [nn.Conv2d(1, 32, 3, 2, 1, bias=False), nn.BatchNorm2d(32),
                     nn.ReLU6(inplace=True)], 32
        for t, w, n, s in ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 2, 2), (6, 64, 2, 2),
                           (6, 96, 1, 1), (6, 160, 1, 2)):
            for i in range(n):
                layers.append(InvertedResidual(c, w, s if i == 0 else 1, t))
                c = w
        layers += [nn.Conv2d(c, 512, 1, bias=False), nn.BatchNorm2d(512), nn.ReLU6(inplace=True)]
        self.features, self.fc = nn.Sequential(*layers), nn.Linear(512, embedding_dim)

    def forward(self, x):
        return self.fc(self.features(x).mean(dim=(2, 3)))


CANDIDATES = {
    "resnet18 (study)": lambda: ResNet18(512),
    "lite: narrow ResNet 32-256, stride-2 stem": lambda: LiteResNet(128),
    "narrow ResNet 16-128, stride-2 stem": lambda: LiteResNet(128, widths=(16, 32, 64, 128)),
    "MobileNetV2-style, expansion 6": lambda: MobileNetV2ish(128),
}


def train_samples_per_s(net: nn.Module, *, batch: int = 32, steps: int = 5) -> float:
    with torch.no_grad():  # the embedding's width, whatever its last layer is named
        width = net.eval()(torch.zeros(2, 1, 100, 120)).shape[1]
    net = net.to(memory_format=torch.channels_last).train()
    head = nn.Linear(width, 10)
    opt = torch.optim.SGD([*net.parameters(), *head.parameters()], lr=1e-3, momentum=0.9)
    x = torch.randn(batch, 1, 100, 120).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,))
    for i in range(steps + 1):
        if i == 1:  # the first step pays one-off allocation
            t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = nn.functional.cross_entropy(head(net(x)).float(), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return batch * steps / (time.perf_counter() - t0)


def inference_ms_best(net: nn.Module, *, repeats: int = 10) -> float:
    from torch.fx.experimental.optimization import fuse

    net = fuse(net.eval()).to(torch.bfloat16).to(memory_format=torch.channels_last)
    x = torch.randn(2, 1, 100, 120).to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
    times = []
    with torch.inference_mode():
        for _ in range(repeats):
            t0 = time.perf_counter()
            net(x)
            times.append(time.perf_counter() - t0)
    return 1000 * min(times)


def main() -> None:
    from torch.utils.flop_counter import FlopCounterMode

    rows = []
    for name, make in CANDIDATES.items():
        torch.manual_seed(0)
        with FlopCounterMode(display=False) as counter:
            make()(torch.randn(1, 1, 100, 120))
        rows.append({"backbone": name, "gflop_per_crop": counter.get_total_flops() / 1e9,
                     "train_samples_per_s": train_samples_per_s(make()),
                     "infer_ms_best": inference_ms_best(make())})
        print(json.dumps(rows[-1]), flush=True)
    print(json.dumps({"threads": torch.get_num_threads(), "load_average": os.getloadavg()[0]}))


if __name__ == "__main__":
    main()
