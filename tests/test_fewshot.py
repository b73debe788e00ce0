"""Few-shot calibration from whole-network latencies (`explore calibrate --measured`)."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
import pytest

from explorer.cost.analyze import analyze
from explorer.cost.platforms import get_platform
from explorer.measure import fewshot as F
from explorer.measure.agreement import agreement
from explorer.spec import nb201 as nb

RNG = np.random.default_rng(7)
ALL = F.all_nb201_strings()
SOME = [ALL[i] for i in RNG.choice(len(ALL), 600, replace=False)]


def truth(prior: F.Device) -> F.Device:
    """A made-up device the fit must find from its prior: slower GEMMs, faster memory, dearer dispatch."""
    params = dataclasses.replace(
        prior.params, op_dispatch_s=26e-6, library_dispatch_s=21e-6, vector_efficiency=0.08, call_overhead_s=90e-6
    )
    return dataclasses.replace(
        prior,
        peak_flops_per_s=prior.peak_flops_per_s * 0.4,
        bandwidth_bytes_per_s=prior.bandwidth_bytes_per_s * 1.7,
        params=params,
    )


def test_the_nb201_bank_is_exactly_the_networks_analysed_one_by_one() -> None:
    names = SOME[:3]
    fast = F.nb201_bank(names, "eager", batch=32)
    slow = F.bank_from_archs([nb.nb201_arch(n) for n in names], "eager", batch=32)
    platform = dataclasses.replace(get_platform("rtx2080ti"), runtime="eager")
    device = F.prior_device(get_platform("rtx2080ti"), "eager")
    direct = [analyze(nb.nb201_arch(n), platform=platform, batch=32).latency_s for n in names]
    np.testing.assert_allclose(F.predict_s(fast, device), direct, rtol=1e-12)
    np.testing.assert_allclose(F.predict_s(slow, device), direct, rtol=1e-12)
    np.testing.assert_array_equal(fast.layers, slow.layers)
    np.testing.assert_allclose(fast.flops, [analyze(nb.nb201_arch(n), batch=32).total_flops for n in names])
    with pytest.raises(ValueError, match="cudnn"):
        F.nb201_bank(names, "cudnn")


@pytest.mark.parametrize("batch", [1, 256])
def test_the_fit_finds_a_device_from_ten_of_its_networks(batch: int) -> None:
    """An oracle test: latencies made by known constants; ten networks fitted from the prior predict 600
    others as the truth does."""
    bank = F.nb201_bank(SOME, "eager", batch)
    prior = F.prior_device(get_platform("titan-rtx"), "eager")
    made = F.predict_s(bank, truth(prior))
    shots = F.select_networks(bank, 10)
    fit = F.fit_few_shot(bank.subset(shots), made[shots], prior)
    held = np.setdiff1d(np.arange(len(SOME)), shots)
    got = agreement(F.predict_s(bank, fit.device)[held], made[held])
    before = agreement(F.predict_s(bank, prior)[held], made[held])
    assert got.median_abs_error < 0.03 and got.spearman > 0.99
    assert before.median_abs_error > 0.1 > 3 * got.median_abs_error  # the prior alone is far off: the fit did the work


def test_leave_one_out_scores_each_network_by_a_fit_on_the_others() -> None:
    bank = F.nb201_bank(SOME[:10], "eager", 1)
    prior = F.prior_device(get_platform("rtx2080ti"), "eager")
    loo = F.leave_one_out(bank, F.predict_s(bank, truth(prior)), prior)
    assert loo.n == 10 and loo.median_abs_error < 0.05
    with pytest.raises(ValueError, match="too few"):
        F.fit_few_shot(bank.subset(range(5)), np.ones(5), prior)
    with pytest.raises(ValueError, match="positive"):
        F.fit_few_shot(bank, -np.ones(10), prior)


def test_selection_spreads_over_what_decides_latency() -> None:
    bank = F.nb201_bank(ALL, "eager", 1)
    chosen = F.select_networks(bank, 10)
    assert chosen == F.select_networks(bank, 10) and len(set(chosen)) == 10
    x = bank.selection_features()
    covered = np.ptp(x[chosen], axis=0) / np.ptp(x, axis=0)
    assert np.all(covered > 0.8), covered
    random = RNG.choice(len(ALL), 10, replace=False)
    assert np.mean(np.ptp(x[random], axis=0) / np.ptp(x, axis=0)) < np.mean(covered)


def test_measured_csv_rows_and_their_errors() -> None:
    rows = F.read_measured("arch,latency_us\nnb201:|a|,1500\n\nresnet18,2e3\n", "m.csv")
    assert rows == [F.MeasuredRow("nb201:|a|", 1.5e-3, 2), F.MeasuredRow("resnet18", 2e-3, 4)]
    for text, message in (
        ("arch,latency\nx,1\n", "unit"),
        ("net,latency_ms\nx,1\n", "`arch` column"),
        ("arch,latency_ms\nx,-1\n", "line 2: latency_ms='-1' must be a positive"),
        ("arch,latency_ms\nx,fast\n", "not a number"),
        ("", "empty"),
        ("arch,latency_ms\ntiny,1\nresnet18,2\ntiny,1\n", r"line 4: arch='tiny' is listed again \(first on line 2\)"),
        ('arch,latency_ms\n"a\nb",1\n\nx,fast\n', "line 5: latency_ms='fast'"),  # a quoted field spans 2 lines
    ):
        with pytest.raises(ValueError, match=message):
            F.read_measured(text, "m.csv")
    spreadsheet = "\ufeffarch,latency_ms\r\n# timed on the phone\r\ntiny,1\r\n"  # BOM, CRLF, a comment row
    assert F.read_measured(spreadsheet, "m.csv") == [F.MeasuredRow("tiny", 1e-3, 3)]


def test_a_candidates_file_and_the_template_it_leads_to(tmp_path: Path) -> None:
    text = "\ufefftiny  # the test net\n\n   # an indented comment\nspecs/a.json\nnb201:|nor_conv_3x3~0|\n"
    assert F.read_candidates(text, "c.txt") == [
        ("tiny", "c.txt, line 1"),
        ("specs/a.json", "c.txt, line 4"),
        ("nb201:|nor_conv_3x3~0|", "c.txt, line 5"),
    ]
    with pytest.raises(ValueError, match=r"c.txt, line 3: 'tiny' is listed again \(first on line 1\)"):
        F.read_candidates("tiny\nresnet18\ntiny # again\n", "c.txt")
    assert F.read_candidates("\"tiny\"\n'resnet18'\n", "c.txt") == [
        ("tiny", "c.txt, line 1"),
        ("resnet18", "c.txt, line 2"),
    ]
    (tmp_path / "cands" / "specs").mkdir(parents=True)
    (tmp_path / "cands" / "specs" / "a.json").write_text("{}")
    out = tmp_path / "elsewhere" / "m.csv"  # the template names the spec from its own folder
    names = F.template_names(["specs/a.json", "tiny", "specs/none.json"], tmp_path / "cands", out)
    assert names == [str(Path("..") / "cands" / "specs" / "a.json"), "tiny", "specs/none.json"]
    assert (out.parent / names[0]).resolve() == (tmp_path / "cands" / "specs" / "a.json").resolve()
    from explorer.spec import dump_arch, load_arch

    dump_arch(load_arch("tiny"), tmp_path / "cands" / "specs" / "same.json")  # tiny under another name
    with pytest.raises(
        ValueError, match=r"c.txt, line 3: 'specs/same.json' is the network 'tiny' is \(c.txt, line 1\)"
    ):
        F.bank_of(["tiny", "resnet18", "specs/same.json"], "cudnn", 1, "float32", tmp_path / "cands",
                  ["c.txt, line 1", "c.txt, line 2", "c.txt, line 3"])  # fmt: skip


def test_explore_calibrate_measured_writes_a_platform_that_predicts_the_device(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from explorer.cli import main

    assert (
        main(
            [
                "calibrate",
                "--select",
                "12",
                "--platform",
                "rtx2080ti",
                "--runtime",
                "eager",
                "--out",
                str(tmp_path / "pick.csv"),
            ]
        )
        == 0
    )
    picked = [line.split(",")[0] for line in (tmp_path / "pick.csv").read_text().splitlines()[1:]]
    assert len(picked) == 12 and all(nb.is_nb201(p) for p in picked)
    bank = F.nb201_bank(picked, "eager", 1)
    made = F.predict_s(bank, truth(F.prior_device(get_platform("rtx2080ti"), "eager")))
    csv = tmp_path / "measured.csv"
    csv.write_text("arch,latency_ms\n" + "".join(f"{a},{t * 1e3}\n" for a, t in zip(picked, made, strict=True)))
    out = tmp_path / "device.toml"
    assert (
        main(["calibrate", "--measured", str(csv), "--platform", "rtx2080ti", "--runtime", "eager", "--out", str(out)])
        == 0
    )
    printed = capsys.readouterr().out
    assert "leave-one-out over the 12 networks: Spearman" in printed
    device = get_platform(str(out))
    assert device.runtime == "eager" and device.kernel_params.op_dispatch_s > 0
    other = next(a for a in SOME if a not in picked)
    want = F.predict_s(F.nb201_bank([other], "eager", 1), truth(F.prior_device(get_platform("rtx2080ti"), "eager")))[0]
    assert analyze(nb.nb201_arch(other), platform=device).latency_s == pytest.approx(want, rel=0.05)
    csv.write_text("arch,latency_ms\n" + "".join(f"{a},1\n" for a in picked[:4]))
    assert main(["calibrate", "--measured", str(csv), "--platform", "rtx2080ti", "--out", str(out)]) == 2
    assert main(["calibrate", "--measured", str(csv), "--out", str(out)]) == 2  # no prior platform


def test_a_prior_platform_without_a_runtime_asks_for_runtime_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from explorer.cli import main

    measured = tmp_path / "m.csv"
    measured.write_text("arch,latency_ms\n" + "".join(f"{n},1\n" for n in ("tiny", "resnet18", "vgg16")))
    assert (
        main(["calibrate", "--measured", str(measured), "--platform", "tpu-v4", "--out", str(tmp_path / "d.toml")]) == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert (
        len(err) == 1 and "--platform tpu-v4 has no runtime to fit the device's kernels under; give --runtime" in err[0]
    )


def test_latencies_in_another_unit_than_their_column_are_refused_and_a_fair_fit_records_its_batch(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A made-up device's latencies written 1000x off (seconds under latency_ms, microseconds under it)
    make the fit move a constant implausibly far from its prior: one line, naming it and the unit. The
    same latencies in their unit fit, and the platform file records the batch it was measured at."""
    from explorer.cli import main

    bank = F.nb201_bank(SOME[:12], "eager", 32)
    made = F.predict_s(bank, truth(F.prior_device(get_platform("rtx2080ti"), "eager")))
    csv, out = tmp_path / "m.csv", tmp_path / "d.toml"
    run = ["calibrate", "--measured", str(csv), "--platform", "rtx2080ti", "--runtime", "eager", "--batch", "32"]
    for factor in (1e-3, 1e3):  # seconds or microseconds written as milliseconds
        csv.write_text(
            "arch,latency_ms\n" + "".join(f"{a},{t * 1e3 * factor}\n" for a, t in zip(SOME[:12], made, strict=True))
        )
        assert main([*run, "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "prior standard deviations" in err[0] and "latency_ms" in err[0], err
        assert err[0].startswith("explore: error: m.csv: the fit puts ") and not out.exists()
    csv.write_text("arch,latency_ms\n" + "".join(f"{a},{t * 1e3}\n" for a, t in zip(SOME[:12], made, strict=True)))
    assert main([*run, "--out", str(out)]) == 0
    device = get_platform(str(out))
    assert device.extra["measured_batch"] == 32 and device.batch_note(32) is None
    assert "measured at batch 32; at batch 256" in str(device.batch_note(256))
    capsys.readouterr()
    assert main(["score", "tiny", "--platform", str(out), "--batch", "256", "--quiet"]) == 0
    assert "was fitted on networks measured at batch 32" in capsys.readouterr().err
    csv.write_text("arch,latency_ms\n" + "".join(f"{a},2.5\n" for a in SOME[:12]))
    assert main([*run, "--out", str(out)]) == 2
    assert "every network's latency is the same (0.0025 s)" in capsys.readouterr().err


def test_the_selection_does_not_depend_on_the_order_networks_are_listed_in() -> None:
    """NB201's networks share selection features (ties): the pick goes by name, so the command (all
    strings in product order), a report (HELP's order) and a shuffled candidates file agree."""
    bank = F.nb201_bank(ALL, "eager", 1)
    order = RNG.permutation(len(ALL))
    shuffled = F.nb201_bank([ALL[i] for i in order], "eager", 1)
    picked = {bank.labels[i] for i in F.select_networks(bank, 10)}
    assert picked == {shuffled.labels[i] for i in F.select_networks(shuffled, 10)}
    assert len({tuple(v) for v in bank.selection_features()}) < len(ALL) // 10  # the ties are real


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|",
            "looks like an NB201 arch string; write it with the prefix: nb201:|none~0|",
        ),
        ("nb201:|none~0| + |none~0|none~1|+|none~0|none~1|none~2|", "has spaces inside; write it without them"),
    ],
)
def test_nb201_strings_written_as_help_prints_them_get_the_fix(text: str, message: str) -> None:
    from explorer.spec import SpecError, load_arch

    with pytest.raises(SpecError, match=re.escape(message)):
        load_arch(text)
