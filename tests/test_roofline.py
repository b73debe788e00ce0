"""Roofline numbers derived by hand from the platform table."""

from __future__ import annotations

import pytest

from conftest import single
from explorer.cost.analyze import analyze
from explorer.cost.platforms import catalog, get_platform
from explorer.cost.roofline import roof
from explorer.spec import Conv, Dense


def test_v100_ridge_points() -> None:
    v100 = get_platform("v100")
    assert v100.ridge_flops_per_byte("float32") == pytest.approx(15.7e12 / 900e9)  # 17.4
    assert v100.ridge_flops_per_byte("fp16") == pytest.approx(125e12 / 900e9)  # 139


def test_roof_memory_and_compute_sides() -> None:
    peak, bw = 15.7e12, 900e9
    low = roof(1e6, 1e6, peak, bw)  # 1 FLOP/B, far below the ridge
    assert low.bound == "memory"
    assert low.attainable_flops_per_s == pytest.approx(1.0 * bw)
    assert low.time_s == pytest.approx(1e6 / bw)
    high = roof(1e9, 1e6, peak, bw)  # 1000 FLOP/B
    assert high.bound == "compute"
    assert high.attainable_flops_per_s == peak
    assert high.time_s == pytest.approx(1e9 / peak)


def test_layer_times_sum_to_latency_and_throughput() -> None:
    arch = single(Conv(name="c", out=64, kernel=3, bias=False), (56, 56, 64))
    r = analyze(arch, platform="v100", traffic="rw", latency_model="roofline")
    flops = 2 * 56 * 56 * 9 * 64 * 64
    nbytes = 4 * (9 * 64 * 64 + 2 * 56 * 56 * 64)
    intensity = flops / nbytes
    assert r.layers[0].intensity == pytest.approx(intensity)
    assert r.layers[0].attainable_flops_per_s == pytest.approx(min(15.7e12, intensity * 900e9))
    assert r.latency_s == pytest.approx(max(flops / 15.7e12, nbytes / 900e9))
    assert r.attainable_flops_per_s == pytest.approx(flops / r.latency_s)
    assert r.images_per_s == pytest.approx(1 / r.latency_s)


def test_per_layer_roofline_is_never_faster_than_the_whole_model_one(base_archs) -> None:
    for arch in base_archs.values():
        r = analyze(arch, platform="v100")
        assert r.latency_s >= r.model_roofline.time_s * (1 - 1e-12)


def test_fc_layer_memory_bound_at_batch_1_compute_bound_at_256() -> None:
    fc = single(Dense(name="fc", out=4096), (4096,))
    assert analyze(fc, platform="v100", batch=1, latency_model="roofline").layers[0].bound == "memory"
    assert analyze(fc, platform="v100", batch=256, latency_model="roofline").layers[0].bound == "compute"
    # the kernel model agrees on the side of the roof: a batch-1 matmul streams its weights
    assert analyze(fc, platform="v100", batch=1).layers[0].bound == "memory"
    assert analyze(fc, platform="v100", batch=256).layers[0].bound == "compute"


def test_catalog_entries_have_sources_and_positive_numbers() -> None:
    required = {
        "v100",
        "v100-pcie",
        "t4",
        "a100",
        "a100-80g",
        "l4",
        "h100",
        "h100-pcie",
        "h200",
        "rtx4090",
        "gtx1080ti",
        "tpu-v4",
        "tpu-v5e",
        "apple-m2",
        "xeon-8380",
        "jetson-nano",
    }
    assert required <= set(catalog())
    for p in catalog().values():
        assert p.source and p.bandwidth_bytes_per_s > 0 and p.peak_flops_per_s
        assert all(v > 0 for v in p.peak_flops_per_s.values())
    assert get_platform("h100").peak("bf16") == 989e12


def test_platform_file_and_its_errors(tmp_path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text(
        '[mine]\nname = "My GPU"\npeak_tflop_per_s = { float32 = 10.0 }\nbandwidth_gb_per_s = 500\nsource = "spec sheet"\n'
    )
    mine = get_platform(str(path))
    assert (mine.key, mine.peak("fp32"), mine.bandwidth_bytes_per_s) == ("mine", 10e12, 500e9)
    assert analyze(single(Dense(name="fc", out=8), (8,)), platform=str(path)).peak_flops_per_s == 10e12
    path.write_text("[mine]\npeak_tflop_per_s = { float32 = -1 }\nbandwidth_gb_per_s = 500\n")
    with pytest.raises(ValueError, match=r"\[mine\]: peak_tflop_per_s.float32=-1 must be a positive, finite number"):
        get_platform(str(path))
    path.write_text("[mine]\npeak_tflop_per_s = { fp64 = 1 }\nbandwidth_gb_per_s = 500\n")
    with pytest.raises(ValueError, match="unknown dtype 'fp64'"):
        get_platform(str(path))


def test_a_layer_or_network_that_moves_no_bytes_has_no_intensity_in_its_json() -> None:
    """An in-place activation moves nothing: its intensity is undefined, null in the JSON (the
    table's '-'), and a network of nothing else has none either, as its whole-model roofline."""
    import json

    from explorer.files import dumps_json
    from explorer.report.table import layer_table
    from explorer.spec import Act, Arch

    both = Arch(name="b", input_shape=(4, 4, 3), ops=(Conv(name="c", out=4), Act(name="r", fn="relu")))
    result = analyze(both, platform="v100", latency_model="roofline")
    layers = {layer["name"]: layer for layer in json.loads(dumps_json(result.to_dict()))["layers"]}
    assert layers["r"]["bytes"] == 0 and layers["r"]["intensity"] is None
    assert layers["c"]["intensity"] == pytest.approx(layers["c"]["total_flops"] / layers["c"]["bytes"])
    row = next(line for line in layer_table(result).splitlines() if line.startswith("r "))
    assert row.split()[-3] == "-"  # the table's intensity column
    alone = json.loads(dumps_json(analyze(Arch(name="a", input_shape=(4, 4, 3), ops=(Act(name="r", fn="relu"),)),
                                          platform="v100").to_dict()))  # fmt: skip
    assert alone["bytes"] == 0 and alone["intensity"] is None and alone["model_roofline"]["intensity"] is None
