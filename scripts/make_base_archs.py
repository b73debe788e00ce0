"""Write the base architectures in search_spaces/*.json from their reference definitions.

    python scripts/make_base_archs.py

Each network mirrors one public reference definition layer for layer (named in its "source");
the golden test (tests/test_golden.py) checks the result against the published MACs and params.
The JSON files are the data the package reads; this script only records how they were made.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from explorer.spec import arch_from_dict, dump_arch

OUT = Path(__file__).resolve().parent.parent / "search_spaces"


class Net:
    """Collects ops as dicts; every method returns the name of the op it added."""

    def __init__(self) -> None:
        self.ops: list[dict[str, Any]] = []

    def op(self, name: str, kind: str, inputs: list[str] | None = None, **fields: Any) -> str:
        entry: dict[str, Any] = {"name": name, "kind": kind}
        if inputs:
            entry["inputs"] = inputs
        entry.update(fields)
        self.ops.append(entry)
        return name

    def conv(
        self,
        name: str,
        out: int,
        k: int,
        s: int = 1,
        p: int | str = 0,
        bias: bool = True,
        inputs: list[str] | None = None,
        **kw: Any,
    ) -> str:
        fields: dict[str, Any] = {"out": out, "kernel": k}
        if s != 1:
            fields["stride"] = s
        fields["padding"] = p
        if not bias:
            fields["bias"] = False
        fields.update(kw)
        return self.op(name, "conv", inputs, **fields)

    def depthwise(
        self, name: str, k: int, s: int = 1, p: int | str = 0, bias: bool = False, inputs: list[str] | None = None
    ) -> str:
        """A depthwise conv: groups=0 means one group per input channel, out = in."""
        fields: dict[str, Any] = {"kernel": k, "groups": 0, "padding": p}
        if s != 1:
            fields["stride"] = s
        if not bias:
            fields["bias"] = False
        return self.op(name, "conv", inputs, **fields)

    def conv_bn_act(
        self,
        name: str,
        out: int,
        k: int,
        s: int = 1,
        p: int = 0,
        fn: str | None = "relu",
        inputs: list[str] | None = None,
        eps: float | None = None,
        **kw: Any,
    ) -> str:
        self.conv(name, out, k, s, p, bias=False, inputs=inputs, **kw)
        last = self.op(f"{name}.bn", "bn", **({"eps": eps} if eps is not None else {}))
        if fn:
            last = self.op(f"{name}.act", "act", fn=fn)
        return last


def write(name: str, source: str, input_shape: list[int], net: Net) -> None:
    data = {"name": name, "source": source, "input": input_shape, "ops": net.ops}
    arch = arch_from_dict(data, name)  # validates every shape
    dump_arch(arch, OUT / f"{name}.json")


def alexnet() -> None:
    n = Net()
    for i, (out, k, s, p, pool) in enumerate(
        [
            (64, 11, 4, 2, True),
            (192, 5, 1, 2, True),
            (384, 3, 1, 1, False),
            (256, 3, 1, 1, False),
            (256, 3, 1, 1, True),
        ],
        1,
    ):
        n.conv(f"conv{i}", out, k, s, p)
        n.op(f"conv{i}.act", "act", fn="relu")
        if pool:
            n.op(f"pool{i}", "maxpool", kernel=3, stride=2)
    n.op("flatten", "flatten")
    for i, out in ((6, 4096), (7, 4096)):
        n.op(f"fc{i}", "dense", out=out)
        n.op(f"fc{i}.act", "act", fn="relu")
    n.op("fc8", "dense", out=1000)
    write(
        "alexnet",
        "torchvision.models.alexnet (the one-GPU variant of Krizhevsky et al. 2012: 64-192-384-256-256 channels). "
        "Its AdaptiveAvgPool2d(6) is the identity at 224x224 and dropout costs nothing at inference, so both are left out.",
        [224, 224, 3],
        n,
    )


def vgg16() -> None:
    n = Net()
    block = 1
    index = 1
    for v in [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]:
        if v == "M":
            n.op(f"pool{block}", "maxpool", kernel=2, stride=2)
            block, index = block + 1, 1
            continue
        n.conv(f"conv{block}_{index}", int(v), 3, 1, 1)
        n.op(f"conv{block}_{index}.act", "act", fn="relu")
        index += 1
    n.op("flatten", "flatten")
    for i in (6, 7):
        n.op(f"fc{i}", "dense", out=4096)
        n.op(f"fc{i}.act", "act", fn="relu")
    n.op("fc8", "dense", out=1000)
    write(
        "vgg16",
        "torchvision.models.vgg16 (configuration D of Simonyan & Zisserman 2015, no batch-norm). "
        "AdaptiveAvgPool2d(7) is the identity at 224x224; dropout is free at inference.",
        [224, 224, 3],
        n,
    )


def _resnet_stem(n: Net) -> str:
    n.conv_bn_act("conv1", 64, 7, 2, 3)
    return n.op("maxpool", "maxpool", kernel=3, stride=2, padding=1)


def _resnet_stages(n: Net, x: str, cin: int, layers: list[int], widths: list[int], bottleneck: bool) -> str:
    """torchvision's ResNet stages after a stem giving `x` with `cin` channels; the last op's name."""
    for stage, (blocks, width) in enumerate(zip(layers, widths, strict=True), 1):
        for b in range(blocks):
            p = f"layer{stage}.{b}"
            stride = 2 if stage > 1 and b == 0 else 1
            cout = width * 4 if bottleneck else width
            if bottleneck:  # torchvision v1.5: the stride sits in the 3x3 conv
                n.conv_bn_act(f"{p}.conv1", width, 1, inputs=[x])
                n.conv_bn_act(f"{p}.conv2", width, 3, stride, 1)
                last = n.conv_bn_act(f"{p}.conv3", cout, 1, fn=None)
            else:
                n.conv_bn_act(f"{p}.conv1", width, 3, stride, 1, inputs=[x])
                last = n.conv_bn_act(f"{p}.conv2", width, 3, 1, 1, fn=None)
            shortcut = x
            if stride != 1 or cin != cout:
                shortcut = n.conv_bn_act(f"{p}.downsample", cout, 1, stride, fn=None, inputs=[x])
            n.op(f"{p}.add", "add", inputs=[last, shortcut])
            x = n.op(f"{p}.act", "act", fn="relu")
            cin = cout
    return x


def resnet(name: str, layers: list[int], bottleneck: bool) -> None:
    n = Net()
    _resnet_stages(n, _resnet_stem(n), 64, layers, [64, 128, 256, 512], bottleneck)
    n.op("avgpool", "gap")
    n.op("fc", "dense", out=1000)
    paper = "He et al. 2016" + (
        ", v1.5 stride placement (stride in the 3x3 conv), as torchvision" if bottleneck else ""
    )
    write(
        name, f"torchvision.models.{name} ({paper}); convs without bias, each followed by batch-norm.", [224, 224, 3], n
    )


def digits_resnet() -> None:
    """A three-stage ResNet for 16x16 digits (scripts/prune_digits.py), with torchvision's block names."""
    n = Net()
    _resnet_stages(n, n.conv_bn_act("conv1", 32, 3, 1, 1), 32, [1, 1, 1], [32, 64, 128], bottleneck=False)
    n.op("avgpool", "gap")
    n.op("fc", "dense", out=10)
    write(
        "digits_resnet",
        "explorer: a small ResNet (torchvision's block structure and names) for 16x16 upsampled scikit-learn "
        "digits, used by scripts/prune_digits.py",
        [16, 16, 1],
        n,
    )


def mobilenet_v1() -> None:
    n = Net()
    n.conv_bn_act("conv1", 32, 3, 2, 1)
    plan = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)] + [(512, 1)] * 5 + [(1024, 2), (1024, 1)]
    for i, (out, s) in enumerate(plan, 2):
        n.depthwise(f"conv{i}.dw", 3, s, 1)
        n.op(f"conv{i}.dw.bn", "bn")
        n.op(f"conv{i}.dw.act", "act", fn="relu")
        n.conv_bn_act(f"conv{i}.pw", out, 1)
    n.op("avgpool", "gap")
    n.op("fc", "dense", out=1000)
    write(
        "mobilenet_v1",
        "Howard et al. 2017, Table 1 (width multiplier 1.0, 224x224): a 3x3 stride-2 conv then 13 depthwise-separable "
        "blocks, each conv followed by batch-norm and ReLU; no torchvision model exists, the paper's Table 6 is the reference.",
        [224, 224, 3],
        n,
    )


def mobilenet_v2() -> None:
    n = Net()
    x = n.conv_bn_act("features.0", 32, 3, 2, 1, fn="relu6")
    cin = 32
    index = 1
    for t, c, reps, s in [
        (1, 16, 1, 1),
        (6, 24, 2, 2),
        (6, 32, 3, 2),
        (6, 64, 4, 2),
        (6, 96, 3, 1),
        (6, 160, 3, 2),
        (6, 320, 1, 1),
    ]:
        for r in range(reps):
            stride = s if r == 0 else 1
            p = f"features.{index}"
            hidden = cin * t
            y = x
            if t != 1:
                y = n.conv_bn_act(f"{p}.expand", hidden, 1, fn="relu6", inputs=[x])
            n.depthwise(f"{p}.dw", 3, stride, 1, inputs=[y])
            n.op(f"{p}.dw.bn", "bn")
            n.op(f"{p}.dw.act", "act", fn="relu6")
            y = n.conv_bn_act(f"{p}.project", c, 1, fn=None)
            if stride == 1 and cin == c:
                y = n.op(f"{p}.add", "add", inputs=[x, y])
            x, cin = y, c
            index += 1
    n.conv_bn_act(f"features.{index}", 1280, 1, fn="relu6", inputs=[x])
    n.op("avgpool", "gap")
    n.op("classifier", "dense", out=1000)
    write(
        "mobilenet_v2",
        "torchvision.models.mobilenet_v2 (Sandler et al. 2018, width 1.0): inverted residual blocks, ReLU6, "
        "batch-norm after every conv; dropout is free at inference.",
        [224, 224, 3],
        n,
    )


def googlenet() -> None:
    n = Net()
    eps = 0.001
    n.conv_bn_act("conv1", 64, 7, 2, 3, eps=eps)
    n.op("maxpool1", "maxpool", kernel=3, stride=2, ceil_mode=True)
    n.conv_bn_act("conv2", 64, 1, eps=eps)
    n.conv_bn_act("conv3", 192, 3, 1, 1, eps=eps)
    x = n.op("maxpool2", "maxpool", kernel=3, stride=2, ceil_mode=True)
    modules = {
        "3a": (64, 96, 128, 16, 32, 32),
        "3b": (128, 128, 192, 32, 96, 64),
        "pool3": None,
        "4a": (192, 96, 208, 16, 48, 64),
        "4b": (160, 112, 224, 24, 64, 64),
        "4c": (128, 128, 256, 24, 64, 64),
        "4d": (112, 144, 288, 32, 64, 64),
        "4e": (256, 160, 320, 32, 128, 128),
        "pool4": None,
        "5a": (256, 160, 320, 32, 128, 128),
        "5b": (384, 192, 384, 48, 128, 128),
    }
    for key, widths in modules.items():
        if widths is None:
            k = 3 if key == "pool3" else 2
            x = n.op(f"maxpool{key[-1]}", "maxpool", kernel=k, stride=2, ceil_mode=True, inputs=[x])
            continue
        c1, r3, c3, r5, c5, pp = widths
        p = f"inception{key}"
        b1 = n.conv_bn_act(f"{p}.branch1", c1, 1, inputs=[x], eps=eps)
        n.conv_bn_act(f"{p}.branch2.reduce", r3, 1, inputs=[x], eps=eps)
        b2 = n.conv_bn_act(f"{p}.branch2", c3, 3, 1, 1, eps=eps)
        n.conv_bn_act(f"{p}.branch3.reduce", r5, 1, inputs=[x], eps=eps)
        b3 = n.conv_bn_act(f"{p}.branch3", c5, 3, 1, 1, eps=eps)
        n.op(f"{p}.branch4.pool", "maxpool", inputs=[x], kernel=3, stride=1, padding=1, ceil_mode=True)
        b4 = n.conv_bn_act(f"{p}.branch4", pp, 1, eps=eps)
        x = n.op(f"{p}.concat", "concat", inputs=[b1, b2, b3, b4])
    n.op("avgpool", "gap", inputs=[x])
    n.op("fc", "dense", out=1000)
    write(
        "googlenet",
        "torchvision.models.googlenet, aux heads off (Szegedy et al. 2015, Inception v1, with torchvision's batch-norm). "
        "As in torchvision, the '5x5' branch uses a 3x3 conv (a known torchvision deviation from the paper), so the "
        "counts match torchvision's table rather than the paper's.",
        [224, 224, 3],
        n,
    )


def tiny() -> None:
    n = Net()
    n.conv_bn_act("stem", 16, 3, 1, 1)
    x = n.op("pool", "maxpool", kernel=2)
    n.conv_bn_act("res.conv1", 16, 3, 1, 1, inputs=[x])
    last = n.conv_bn_act("res.conv2", 16, 3, 1, 1, fn=None)
    n.op("res.add", "add", inputs=[x, last])
    x = n.op("res.act", "act", fn="relu")
    b1 = n.conv("mix.branch1", 16, 1, 1, 0, inputs=[x])
    b2 = n.conv("mix.branch2", 24, 3, 1, "same", inputs=[x], bottleneck=8)
    b3 = n.op("mix.branch3", "avgpool", inputs=[x], kernel=3, stride=1, padding=1)
    n.op("mix.concat", "concat", inputs=[b1, b2, b3])
    n.depthwise("dw", 3, 2, "same")
    n.op("dw.bn", "bn")
    n.op("dw.act", "act", fn="relu6")
    n.conv("grouped", 64, 3, 1, "valid", groups=4)
    n.op("grouped.act", "act", fn="relu")
    n.op("gap", "gap")
    n.op("fc", "dense", out=10)
    write(
        "tiny",
        "A small 32x32 test network of explorer's own that uses every op kind: residual add, concat branches, "
        "a 1x1 bottleneck, depthwise and grouped convs, SAME/VALID/explicit padding.",
        [32, 32, 3],
        n,
    )


def inception_5x5() -> None:
    """The classic 1x1-reduction lesson: a 5x5 conv to 32 channels on a 28x28x192 map, with and
    without a 1x1 reduction to 16 channels first (Szegedy et al. 2015, inception 3a's 5x5 branch)."""
    source = (
        "Szegedy et al. 2015 (Inception v1), inception (3a) 5x5 branch: 28x28x192 input, 5x5 conv to 32 channels, "
        "SAME padding, no bias. The _reduced variant puts the paper's 1x1 reduction to 16 channels (+ ReLU) first."
    )
    for name, bottleneck in (("inception_5x5", None), ("inception_5x5_reduced", 16)):
        n = Net()
        n.conv("conv5x5", 32, 5, 1, "same", bias=False, bottleneck=bottleneck)
        write(name, source, [28, 28, 192], n)


if __name__ == "__main__":
    for make in (alexnet, vgg16, mobilenet_v1, mobilenet_v2, googlenet, tiny, inception_5x5, digits_resnet):
        make()
    resnet("resnet18", [2, 2, 2, 2], bottleneck=False)
    resnet("resnet50", [3, 4, 6, 3], bottleneck=True)
    print(f"wrote {len(list(OUT.glob('*.json')))} architectures to {OUT.name}/")
