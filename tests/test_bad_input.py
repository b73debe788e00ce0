"""Bad input, tried systematically: every case gets one line naming the argument, its value and
the fix, a non-zero exit (CLI) or a ValueError (API), never a traceback."""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from explorer.cli import main

CONV = '{"name": "t", "input": [8, 8, 3], "ops": [{"name": "c", "kind": "conv", "out": 4, %s}]}'
PLATFORM = "[x]\npeak_tflop_per_s = { float32 = %s }\nbandwidth_gb_per_s = 900\n"
BN = '{"name": "t", "input": [8, 8, 3], "ops": [{"name": "b", "kind": "bn", "eps": %s}]}'
POOL = '{"name": "t", "input": [8, 8, 3], "ops": [{"name": "p", %s}]}'
SPACE = ["--budget", "2GFLOPs", "--space", "s.space.toml"]
ABLATE = ["ablate", "a.toml", "--out", "o", "--jobs", "1"]
FIFO = object()
"""A file of the table written as a named pipe (reading it would block for ever)."""

# (case, files to write, argv, text the one-line error must contain)
CLI_CASES: list[tuple[str, dict[str, object], list[str], str]] = [
    # command-line values
    ("budget unit", {}, ["--budget", "2GGFLOPs"], "--budget '2GGFLOPs': unit 'GFLOPs' is not understood"),
    ("budget not a number", {}, ["--budget", "lots"], "--budget 'lots' is not a quantity"),
    ("budget zero", {}, ["--budget", "0"], "--budget '0' must be a positive, finite quantity"),
    ("budget huge", {}, ["--budget", "1e400"], "--budget '1e400' must be a positive, finite quantity"),
    ("budget below space", {}, ["--budget", "1MFLOPs"], "is below the smallest network the space can express"),
    ("batch zero", {}, ["--budget", "2GFLOPs", "--batch", "0"], "--batch 0 must be an integer >= 1"),
    ("trials zero", {}, ["--budget", "2GFLOPs", "--trials", "0"], "--trials 0 must be an integer >= 1"),
    ("jobs zero", {}, ["--budget", "2GFLOPs", "--jobs", "0"], "--jobs 0 must be an integer in [1, 1024]"),
    ("floor above 1", {}, ["--budget", "2GFLOPs", "--floor", "1.5"], "--floor 1.5 must be between 0 and 1"),
    ("keep reversed", {}, ["--budget", "2GFLOPs", "--keep", "0.9-0.5"], "--keep '0.9-0.5': need 0 < LOW <= HIGH"),
    ("params unit", {}, ["--budget", "2GFLOPs", "--params", "5Mbytes"], "--params '5Mbytes': unit"),
    ("unknown dtype", {}, ["score", "tiny", "--dtype", "fp64"], "dtype 'fp64' is not known; use one of"),
    ("unknown platform", {}, ["score", "tiny", "--platform", "v1000"], "(did you mean 'v100'?)"),
    ("dtype the platform lacks", {}, ["score", "tiny", "--platform", "t4", "--dtype", "tf32"], "has no tf32 peak"),
    ("peak without bandwidth", {}, ["score", "tiny", "--peak", "10T"], "--peak and --bandwidth go together"),
    ("negative peak", {}, ["score", "tiny", "--peak=-5T", "--bandwidth", "1GB/s"], "--peak '-5T' is not a quantity"),
    (
        "peak without a unit",
        {},
        ["score", "tiny", "--peak", "15.7", "--bandwidth", "900GB/s"],
        "give the unit, e.g. --peak",
    ),
    (
        "peak over bandwidth no chip has",
        {"p.toml": "[x]\npeak_tflop_per_s = { float32 = 13400 }\nbandwidth_gb_per_s = 0.616\n"},
        ["score", "tiny", "--platform", "p.toml"],
        "is a ridge point of 2.18e+07 FLOP/byte",
    ),
    ("unknown space", {}, ["--budget", "2GFLOPs", "--space", "resnet99"], "--space 'resnet99' is not known"),
    ("missing spec file", {}, ["score", "nothere.json"], "ARCH 'nothere.json': no such file"),
    (
        "weights a folder",
        {"w/": None},
        ["--space", "digits_resnet", "--budget", "6MFLOPs", "--objective", "importance", "--weights", "w"],
        "--weights 'w': not a regular file (a folder, device or pipe); give a .safetensors file",
    ),
    (
        "weights a pipe",
        {"w.safetensors": FIFO},
        ["--space", "digits_resnet", "--budget", "6MFLOPs", "--objective", "importance", "--weights", "w.safetensors"],
        "--weights 'w.safetensors': not a regular file",
    ),
    ("report folder without study", {}, ["report", "."], "has no study.db"),
    # spec JSON
    ("empty spec", {"a.json": ""}, ["score", "a.json"], "a.json: the file is empty"),
    ("truncated spec", {"a.json": '{"name": "t", "ops": ['}, ["score", "a.json"], "a.json: not valid JSON"),
    ("zero width", {"a.json": CONV % '"kernel": 3, "out": 0'}, ["score", "a.json"], "out=0 must be a positive integer"),
    ("negative width", {"a.json": CONV % '"out": -4'}, ["score", "a.json"], "out=-4 must be a positive integer"),
    ("width of wrong type", {"a.json": CONV % '"out": "four"'}, ["score", "a.json"], "out='four' must be int"),
    ("huge width", {"a.json": CONV % '"out": 1e30'}, ["score", "a.json"], "out=1e+30 must be int"),
    ("unknown field", {"a.json": CONV % '"colour": 1'}, ["score", "a.json"], "unknown field 'colour'"),
    (
        "kernel larger than input",
        {"a.json": CONV % '"kernel": 11, "padding": 0'},
        ["score", "a.json"],
        "kernel=11 is larger than",
    ),
    (
        "pools shrink the map below 1 pixel",
        {
            "a.json": '{"name": "t", "input": [4, 4, 3], "ops": ['
            + ", ".join(f'{{"name": "p{i}", "kind": "maxpool", "kernel": 2, "stride": 2}}' for i in range(3))
            + "]}"
        },
        ["score", "a.json"],
        "op 'p2' (maxpool): kernel=2 is larger than its padded input (1 + 2x0)",
    ),
    (
        "residual add that cannot hold",
        {
            "a.json": '{"name": "t", "input": [8, 8, 3], "ops": [{"name": "a", "kind": "conv", "out": 4}, '
            '{"name": "b", "kind": "conv", "out": 8}, {"name": "s", "kind": "add", "inputs": ["a", "b"]}]}'
        },
        ["score", "a.json"],
        "have different shapes",
    ),
    # platform files
    ("empty platform file", {"p.toml": ""}, ["score", "tiny", "--platform", "p.toml"], "no platform tables in it"),
    ("broken TOML", {"p.toml": "[x\n"}, ["score", "tiny", "--platform", "p.toml"], "p.toml: not valid TOML"),
    (
        "negative peak in file",
        {"p.toml": PLATFORM % "-1"},
        ["score", "tiny", "--platform", "p.toml"],
        "float32=-1 must be a positive",
    ),
    (
        "peak as text",
        {"p.toml": PLATFORM % '"fast"'},
        ["score", "tiny", "--platform", "p.toml"],
        "float32='fast' must be a positive",
    ),
    (
        "infinite peak",
        {"p.toml": PLATFORM % "1e400"},
        ["score", "tiny", "--platform", "p.toml"],
        "float32=inf must be a positive, finite",
    ),
    # space files
    (
        "space: nothing to search",
        {"s.space.toml": 'arch = "tiny"\nfixed = ["*"]\n[bottleneck]\nallow = []\n'},
        ["--budget", "5MFLOPs", "--space", "s.space.toml"],
        "--space 's.space.toml' has nothing to search: every width is fixed",
    ),
    (
        "space: keep reversed",
        {"s.space.toml": 'arch = "resnet18"\nkeep = [0.9, 0.5]\n'},
        ["--budget", "2GFLOPs", "--space", "s.space.toml"],
        "key 'keep'=[0.9, 0.5] must be [low, high]",
    ),
    (
        "space: align zero",
        {"s.space.toml": 'arch = "resnet18"\nalign = 0\n'},
        ["--budget", "2GFLOPs", "--space", "s.space.toml"],
        "key 'align'=0 must be an integer >= 1",
    ),
    (
        "space: unknown key",
        {"s.space.toml": 'arch = "resnet18"\nspeed = 1\n'},
        ["--budget", "2GFLOPs", "--space", "s.space.toml"],
        "unknown key(s) ['speed']",
    ),
    (
        "space: no arch",
        {"s.space.toml": "keep = [0.5, 1.0]\n"},
        ["--budget", "2GFLOPs", "--space", "s.space.toml"],
        "missing key 'arch'",
    ),
    ("space: empty", {"s.space.toml": ""}, ["--budget", "2GFLOPs", "--space", "s.space.toml"], "missing key 'arch'"),
    (
        "space: zero channels",
        {"s.space.toml": 'arch = "resnet18"\n[widths."layer1.*"]\nchannels = [0, 64]\n'},
        ["--budget", "2GFLOPs", "--space", "s.space.toml"],
        "channels'=[0, 64] must be [low, high]",
    ),
    (
        "space: pattern matching nothing",
        {"s.space.toml": 'arch = "resnet18"\n[bottleneck]\nallow = ["nosuch*"]\n'},
        ["--budget", "2GFLOPs", "--space", "s.space.toml"],
        "bottleneck.allow pattern 'nosuch*' matches no conv",
    ),
    # specs: values that were truncated, ignored, overflowed or crashed
    ("kernel empty", {"a.json": CONV % '"kernel": []'}, ["score", "a.json"], "kernel=[] is not a kernel size"),
    ("kernel nested", {"a.json": CONV % '"kernel": [[3], 3]'}, ["score", "a.json"], "kernel=[[3], 3] is not a kernel"),
    (
        "kernel fraction",
        {"a.json": CONV % '"kernel": [3.7, 3]'},
        ["score", "a.json"],
        "kernel=[3.7, 3] is not a kernel",
    ),
    ("kernel extra value", {"a.json": CONV % '"kernel": [3, 3, 3]'}, ["score", "a.json"], "kernel=[3, 3, 3] is not a"),
    ("kernel zero", {"a.json": CONV % '"kernel": [0, 3]'}, ["score", "a.json"], "kernel=0 must be a positive integer"),
    ("kernel bool", {"a.json": CONV % '"kernel": true'}, ["score", "a.json"], "kernel=True must be int or list"),
    ("kernel float", {"a.json": CONV % '"kernel": 3.0'}, ["score", "a.json"], "kernel=3.0 must be int or list"),
    ("stride fraction", {"a.json": CONV % '"stride": 2.5'}, ["score", "a.json"], "stride=2.5 must be int"),
    ("stride zero", {"a.json": CONV % '"stride": 0'}, ["score", "a.json"], "stride=0 must be a positive integer"),
    (
        "out 400 digits",
        {"a.json": CONV % ('"out": ' + "9" * 400)},
        ["score", "a.json"],
        "(400 characters) is larger than",
    ),
    ("out bool", {"a.json": CONV % '"out": true'}, ["score", "a.json"], "out=True must be int"),
    ("groups negative", {"a.json": CONV % '"groups": -1'}, ["score", "a.json"], "groups=-1 must be an integer >= 0"),
    ("groups not dividing", {"a.json": CONV % '"groups": 2'}, ["score", "a.json"], "groups=2 does not divide"),
    ("bottleneck zero", {"a.json": CONV % '"bottleneck": 0'}, ["score", "a.json"], "bottleneck=0 must be a positive"),
    ("padding negative", {"a.json": CONV % '"padding": -1'}, ["score", "a.json"], "padding=-1 is not a padding"),
    (
        "padding upper case",
        {"a.json": CONV % '"padding": "SAME"'},
        ["score", "a.json"],
        "padding='SAME' is not a padding",
    ),
    ("padding three values", {"a.json": CONV % '"padding": [1, 1, 1]'}, ["score", "a.json"], "is not a padding"),
    ("padding huge", {"a.json": CONV % ('"padding": ' + "9" * 30)}, ["score", "a.json"], "is not a padding"),
    ("bias as text", {"a.json": CONV % '"bias": "yes"'}, ["score", "a.json"], "bias='yes' must be bool"),
    (
        "input 400 digits",
        {
            "a.json": '{"name": "t", "input": [8, 8, '
            + "9" * 400
            + '], "ops": [{"name": "c", "kind": "conv", "out": 4}]}'
        },
        ["score", "a.json"],
        "(408 characters) must be [h, w, c]",
    ),
    (
        "input fractional",
        {"a.json": '{"name": "t", "input": [8.5, 8, 3], "ops": [{"name": "c", "kind": "conv", "out": 4}]}'},
        ["score", "a.json"],
        "input=[8.5, 8, 3] must be [h, w, c]",
    ),
    (
        "input two numbers",
        {"a.json": '{"name": "t", "input": [8, 8], "ops": [{"name": "c", "kind": "dense", "out": 4}]}'},
        ["score", "a.json"],
        "input=[8, 8] must be [h, w, c]",
    ),
    ("input not a list", {"a.json": '{"input": 8, "ops": []}'}, ["score", "a.json"], "input=8 must be [h, w, c]"),
    ("eps NaN", {"a.json": BN % "NaN"}, ["score", "a.json"], "NaN is not a number JSON allows"),
    ("eps Infinity", {"a.json": BN % "Infinity"}, ["score", "a.json"], "Infinity is not a number JSON allows"),
    ("eps negative", {"a.json": BN % "-1"}, ["score", "a.json"], "eps=-1 must be a positive, finite number"),
    ("eps zero", {"a.json": BN % "0"}, ["score", "a.json"], "eps=0 must be a positive, finite number"),
    ("binary spec", {"a.json": b"\x89PNG\r\n\x1a\n\x00\xff"}, ["score", "a.json"], "a.json: not UTF-8 text (byte 0x89"),
    (
        "latin-1 spec",
        {"a.json": '{"name": "caf\xe9"}'.encode("latin-1")},
        ["score", "a.json"],
        "not UTF-8 text (byte 0xe9",
    ),
    ("deep JSON", {"a.json": "[" * 100_000 + "]" * 100_000}, ["score", "a.json"], "a.json: nested more than 64 levels"),
    ("spec is a list", {"a.json": "[1, 2]"}, ["score", "a.json"], "a spec must be a JSON object"),
    ("ops not a list", {"a.json": '{"input": [8, 8, 3], "ops": 5}'}, ["score", "a.json"], "ops must be a list of op"),
    ("ops empty", {"a.json": '{"input": [8, 8, 3], "ops": []}'}, ["score", "a.json"], "ops is empty"),
    (
        "op not an object",
        {"a.json": '{"input": [8, 8, 3], "ops": [5]}'},
        ["score", "a.json"],
        "each op must be an object",
    ),
    (
        "op without name",
        {"a.json": '{"input": [8, 8, 3], "ops": [{"kind": "bn"}]}'},
        ["score", "a.json"],
        "has no name",
    ),
    (
        "op kind unknown",
        {"a.json": CONV.replace('"conv"', '"convv"') % '"out": 4'},
        ["score", "a.json"],
        "did you mean",
    ),
    (
        "spec name a number",
        {"a.json": '{"name": 5, "input": [8, 8, 3], "ops": []}'},
        ["score", "a.json"],
        "name=5 must be",
    ),
    (
        "spec unknown key",
        {"a.json": '{"input": [8, 8, 3], "ops": [], "x": 1}'},
        ["score", "a.json"],
        "unknown key(s) ['x']",
    ),
    ("spec missing ops", {"a.json": '{"input": [8, 8, 3]}'}, ["score", "a.json"], "missing key 'ops'"),
    ("inputs not names", {"a.json": CONV % '"inputs": 5'}, ["score", "a.json"], "inputs=5 must be a list of op names"),
    (
        "input names a later op",
        {"a.json": CONV % '"inputs": ["zz"]'},
        ["score", "a.json"],
        "which no earlier op defines",
    ),
    (
        "op name used twice",
        {"a.json": '{"input": [8, 8, 3], "ops": [{"name": "a", "kind": "bn"}, {"name": "a", "kind": "bn"}]}'},
        ["score", "a.json"],
        "name='a' is used twice",
    ),
    (
        "dense on a map",
        {"a.json": '{"input": [8, 8, 3], "ops": [{"name": "d", "kind": "dense", "out": 4}]}'},
        ["score", "a.json"],
        "gives a map",
    ),
    (
        "conv after flatten",
        {
            "a.json": '{"input": [8, 8, 3], "ops": [{"name": "f", "kind": "flatten"}, {"name": "c", "kind": "conv", "out": 4}]}'
        },
        ["score", "a.json"],
        "not an HxWxC feature map",
    ),
    (
        "concat of different sizes",
        {
            "a.json": '{"input": [8, 8, 3], "ops": [{"name": "a", "kind": "conv", "out": 4, "stride": 2}, '
            '{"name": "b", "kind": "conv", "out": 4, "inputs": ["input"]}, {"name": "c", "kind": "concat", '
            '"inputs": ["a", "b"]}]}'
        },
        ["score", "a.json"],
        "have different spatial sizes",
    ),
    (
        "avgpool ceil mode",
        {"a.json": POOL % '"kind": "avgpool", "ceil_mode": true'},
        ["score", "a.json"],
        "ceil_mode=True",
    ),
    ("spec is a folder", {"d.json/": ""}, ["score", "d.json"], "ARCH 'd.json' is a folder without best_arch.json"),
    ("spec is /dev/zero", {}, ["score", "/dev/zero"], "spec file /dev/zero: not a regular file"),
    ("spec is a FIFO", {"f.json": FIFO}, ["score", "f.json"], "spec file f.json: not a regular file"),
    ("spec too large", {"a.json": " " * (17 * 2**20)}, ["score", "a.json"], "bytes, more than the 16,777,216 allowed"),
    # platform files
    ("platform /dev/zero", {}, ["score", "tiny", "--platform", "/dev/zero"], "platform file /dev/zero: not a regular"),
    (
        "platform FIFO",
        {"p.toml": FIFO},
        ["score", "tiny", "--platform", "p.toml"],
        "platform file p.toml: not a regular",
    ),
    ("platform folder", {"p.toml/": ""}, ["score", "tiny", "--platform", "p.toml"], "p.toml: not a regular file"),
    ("platform binary", {"p.toml": b"\xff\xfe\x00"}, ["score", "tiny", "--platform", "p.toml"], "not UTF-8 text"),
    (
        "peak overflows",
        {"p.toml": PLATFORM % "1e300"},
        ["score", "tiny", "--platform", "p.toml"],
        "float32=1e+300 is above 1e+06 TFLOP/s, which no chip comes near; give it in TFLOP/s",
    ),
    (
        "bandwidth underflows",
        {"p.toml": PLATFORM.replace("900", "1e-320") % "15"},
        ["score", "tiny", "--platform", "p.toml"],
        "bandwidth_gb_per_s=1e-320 is",
    ),
    (
        "peak of a boolean",
        {"p.toml": PLATFORM % "true"},
        ["score", "tiny", "--platform", "p.toml"],
        "float32=True must be a positive",
    ),
    (
        "peaks not a table",
        {"p.toml": "[x]\npeak_tflop_per_s = 5\nbandwidth_gb_per_s = 9\n"},
        ["score", "tiny", "--platform", "p.toml"],
        "must be a table of dtype",
    ),
    (
        "peak of unknown dtype",
        {"p.toml": PLATFORM.replace("float32", "fp64") % "1"},
        ["score", "tiny", "--platform", "p.toml"],
        "unknown dtype 'fp64'",
    ),
    (
        "platform missing bandwidth",
        {"p.toml": "[x]\npeak_tflop_per_s = { float32 = 1 }\n"},
        ["score", "tiny", "--platform", "p.toml"],
        "missing 'bandwidth_gb_per_s'",
    ),
    (
        "platform unknown key",
        {"p.toml": PLATFORM % "1" + "colour = 1\n"},
        ["score", "tiny", "--platform", "p.toml"],
        "unknown key(s) ['colour']",
    ),
    (
        "platform value not table",
        {"p.toml": "x = 5\n"},
        ["score", "tiny", "--platform", "p.toml"],
        "'x' must be a [table]",
    ),
    (
        "platform name a number",
        {"p.toml": PLATFORM % "1" + "name = 5\n"},
        ["score", "tiny", "--platform", "p.toml"],
        "name=5 must be a string",
    ),
    (
        "extra not a table",
        {"p.toml": PLATFORM % "1" + "extra = 5\n"},
        ["score", "tiny", "--platform", "p.toml"],
        "extra=5 must be a table",
    ),
    (
        "extra efficiency not a table",
        {"p.toml": PLATFORM % "1" + "[x.extra]\nefficiency = 5\n"},
        ["score", "tiny", "--platform", "p.toml"],
        "extra.efficiency=5 must be a table",
    ),
    (
        "extra efficiency unknown class",
        {"p.toml": PLATFORM % "1" + "[x.extra.efficiency]\nfoo = 1\n"},
        ["score", "tiny", "--platform", "p.toml"],
        "unknown class 'foo'",
    ),
    (
        "extra efficiency negative",
        {"p.toml": PLATFORM % "1" + "[x.extra.efficiency]\nconv = -1\n"},
        ["score", "tiny", "--platform", "p.toml"],
        "extra.efficiency.conv=-1 must be a positive",
    ),
    (
        "memory negative",
        {"p.toml": PLATFORM % "1" + "memory_gb = -1\n"},
        ["score", "tiny", "--platform", "p.toml"],
        "memory_gb=-1 must be a positive",
    ),
    (
        "custom peak too small",
        {},
        ["score", "tiny", "--peak", "0.5", "--bandwidth", "1GB/s"],
        "--peak 0.5 must be at least 1",
    ),
    (
        "platform and peak",
        {},
        ["score", "tiny", "--platform", "t4", "--peak", "1T", "--bandwidth", "1GB/s"],
        "describe the platform twice",
    ),
    # space files
    ("space: arch a number", {"s.space.toml": "arch = 5\n"}, SPACE, "key 'arch'=5 must be a base architecture"),
    ("space: keep text", {"s.space.toml": 'arch = "tiny"\nkeep = "x"\n'}, SPACE, "key 'keep'='x' must be [low, high]"),
    (
        "space: keep infinite",
        {"s.space.toml": 'arch = "tiny"\nkeep = [0.5, inf]\n'},
        SPACE,
        "key 'keep'=[0.5, inf] must be",
    ),
    (
        "space: keep too wide",
        {"s.space.toml": 'arch = "tiny"\nkeep = [0.5, 100]\n'},
        SPACE,
        "need 0 < low <= high <= 16",
    ),
    ("space: widths a number", {"s.space.toml": 'arch = "tiny"\nwidths = 5\n'}, SPACE, "key 'widths' must be a table"),
    ("space: fixed a number", {"s.space.toml": 'arch = "tiny"\nfixed = 5\n'}, SPACE, "key 'fixed' must be a list"),
    (
        "space: bottleneck a number",
        {"s.space.toml": 'arch = "tiny"\nbottleneck = 5\n'},
        SPACE,
        "key 'bottleneck' must be a table",
    ),
    (
        "space: min_in text",
        {"s.space.toml": 'arch = "tiny"\n[bottleneck]\nmin_in_channels = "x"\n'},
        SPACE,
        "'bottleneck.min_in_channels'='x'",
    ),
    (
        "space: allow a number",
        {"s.space.toml": 'arch = "tiny"\n[bottleneck]\nallow = 5\n'},
        SPACE,
        "'bottleneck.allow'=5 must be",
    ),
    (
        "space: align too large",
        {"s.space.toml": 'arch = "resnet18"\nalign = 100000\n'},
        SPACE,
        "align=100000 gives a channel step",
    ),
    (
        "space: align text",
        {"s.space.toml": 'arch = "tiny"\nalign = "8"\n'},
        SPACE,
        "key 'align'='8' must be an integer",
    ),
    ("space: binary", {"s.space.toml": b"\xff\xfe"}, SPACE, "space file s.space.toml: not UTF-8 text"),
    ("space: FIFO", {"s.space.toml": FIFO}, SPACE, "space file s.space.toml: not a regular file"),
    (
        "space: /dev/zero",
        {},
        ["--budget", "2GFLOPs", "--space", "/dev/zero"],
        "space file /dev/zero: not a regular file",
    ),
    ("space: source a number", {"s.space.toml": 'arch = "tiny"\nsource = 5\n'}, SPACE, "key 'source' must be text"),
    # ablation files
    (
        "ablation: base a number",
        {"a.toml": "[x]\nbase = 5\nfactors = { batch = [1] }\n"},
        ABLATE,
        "base=5 must be a table",
    ),
    ("ablation: factors a number", {"a.toml": "[x]\nfactors = 5\n"}, ABLATE, "factors=5 must be a table"),
    (
        "ablation: edf a number",
        {"a.toml": "[x]\nfactors = { batch = [1] }\nedf = 1\n"},
        ABLATE,
        "edf=1 must be a table",
    ),
    (
        "ablation: reference a number",
        {"a.toml": "[x]\nfactors = { batch = [1] }\nreference = 5\n"},
        ABLATE,
        "reference=5 must be a table",
    ),
    (
        "ablation: description a table",
        {"a.toml": "[x]\nfactors = { batch = [1] }\ndescription = { a = 1 }\n"},
        ABLATE,
        "description={'a': 1} must be text",
    ),
    (
        "ablation: batch text",
        {"a.toml": "[x]\nfactors = { batch = ['x'] }\n"},
        ABLATE,
        "batch='x' must be an integer >= 1",
    ),
    (
        "ablation: floor above 1",
        {"a.toml": "[x]\nfactors = { floor = [2.0] }\n"},
        ABLATE,
        "floor=2.0 must be a number in [0, 1]",
    ),
    (
        "ablation: bottlenecks text",
        {"a.toml": "[x]\nfactors = { bottlenecks = ['yes'] }\n"},
        ABLATE,
        "bottlenecks='yes' must be true or false",
    ),
    (
        "ablation: edf samples zero",
        {"a.toml": "[x]\nfactors = { batch = [1] }\nedf = { factor = 'batch', samples = 0 }\n"},
        ABLATE,
        "edf.samples=0 must be",
    ),
    (
        "ablation: unknown platform",
        {"a.toml": "[x]\nfactors = { platform = ['nope'] }\n"},
        ABLATE,
        "a.toml [x], cell platform=nope: platform='nope' is not known",
    ),
    (
        "ablation: every cell invalid",
        {"a.toml": "[x]\nbase = { method = 'base', budget = '1kFLOPs' }\nfactors = { batch = [1, 2] }\n"},
        ABLATE,
        "cell batch=1: budget='1kFLOPs' (1 kFLOPs) is below the smallest network",
    ),
    ("ablation: not a table", {"a.toml": "x = 5\n"}, ABLATE, "ablation file a.toml [x]: must be a table"),
    ("ablation: /dev/zero", {}, ["ablate", "/dev/zero", "--out", "o"], "ablation file /dev/zero: not a regular file"),
    ("ablation: --set unknown", {}, ["ablate", "inception", "--set", "speed=1"], "--set 'speed=1': write KEY=VALUE"),
    (
        "ablation: --set batch text",
        {},
        ["ablate", "inception", "--set", "batch=x"],
        "--set 'batch=x': batch must be an integer",
    ),
    ("ablation: --set bool text", {}, ["ablate", "inception", "--set", "bottlenecks=maybe"], "must be true or false"),
    ("ablation: --set method", {}, ["ablate", "inception", "--set", "method=foo"], "method 'foo' is not one of"),
    (
        "ablation: --set a factor",
        {},
        ["ablate", "inception", "--set", "traffic=rw", "--out", "o"],
        "--set traffic=rw: 'traffic' is a factor of ablation 'inception'",
    ),
    ("ablation: --set batch zero", {}, ["ablate", "inception", "--set", "batch=0"], "batch=0 must be an integer >= 1"),
    ("ablation: jobs zero", {}, ["ablate", "inception", "--jobs", "0"], "--jobs 0 must be >= 1"),
    # storages and studies
    ("storage malformed", {}, ["--budget", "2GFLOPs", "--storage", "foo"], "--storage 'foo' is not a storage URL"),
    ("storage bare .db path", {}, ["--budget", "2GFLOPs", "--storage", "x.db"], "write e.g. sqlite:///x.db"),
    (
        "storage unknown database",
        {},
        ["--budget", "2GFLOPs", "--storage", "oracle://h/d"],
        "database 'oracle' is not supported",
    ),
    ("storage in memory", {}, ["--budget", "2GFLOPs", "--storage", "sqlite:///:memory:"], "keeps the study in memory"),
    ("storage in memory, no path", {}, ["--budget", "2GFLOPs", "--storage", "sqlite://"], "keeps the study in memory"),
    (
        "storage folder missing",
        {},
        ["--budget", "2GFLOPs", "--storage", "sqlite:///no/x.db"],
        "folder 'no' does not exist",
    ),
    ("journal folder missing", {}, ["--budget", "2GFLOPs", "--storage", "no/x.log"], "folder 'no' does not exist"),
    (
        "storage not a database",
        {"bad.db": b"not a database" * 100},
        ["--budget", "2GFLOPs", "--storage", "sqlite:///bad.db"],
        "cannot be opened as an Optuna storage (DatabaseError",
    ),
    (
        "journal damaged",
        {"bad.log": "{not json\n"},
        ["--budget", "2GFLOPs", "--storage", "bad.log"],
        "record 1 is not valid JSON",
    ),
    ("study name empty", {}, ["--budget", "2GFLOPs", "--study", ""], "--study '' must be a non-empty name"),
    ("report: storage malformed", {}, ["report", "--storage", "foo"], "--storage 'foo' is not a storage URL"),
    # flags
    ("keep infinite", {}, ["--budget", "2GFLOPs", "--keep", "0.5-inf"], "--keep '0.5-inf': need 0 < LOW <= HIGH <= 16"),
    ("keep NaN", {}, ["--budget", "2GFLOPs", "--keep", "nan-1"], "--keep 'nan-1': need 0 < LOW"),
    ("keep one number", {}, ["--budget", "2GFLOPs", "--keep", "0.5"], "--keep '0.5': write LOW-HIGH"),
    (
        "batch 400 digits",
        {},
        ["--budget", "2GFLOPs", "--batch", "9" * 400],
        "(400 characters) must be an integer >= 1 and at most",
    ),
    (
        "score batch 400 digits",
        {},
        ["score", "tiny", "--batch", "9" * 400],
        "(400 characters) must be an integer >= 1 and at most 2,147,483,647",
    ),
    ("batch not a number", {}, ["score", "tiny", "--batch", "x"], "argument --batch: invalid int value: 'x'"),
    (
        "timeout zero",
        {},
        ["--budget", "2GFLOPs", "--timeout", "0"],
        "--timeout 0.0 must be a positive number of seconds",
    ),
    ("timeout negative", {}, ["--budget", "2GFLOPs", "--timeout", "-5"], "--timeout -5.0 must be a positive number"),
    ("timeout NaN", {}, ["--budget", "2GFLOPs", "--timeout", "nan"], "--timeout nan must be a positive number"),
    ("align zero", {}, ["--budget", "2GFLOPs", "--align", "0"], "--align 0 must be an integer >= 1"),
    ("seed negative", {}, ["--budget", "2GFLOPs", "--seed", "-1"], "--seed -1 must be an integer in [0,"),
    (
        "jobs above trials",
        {},
        ["--budget", "2GFLOPs", "--jobs", "5", "--trials", "2"],
        "--jobs 5 is more than trials=2",
    ),
    ("worker negative", {}, ["--budget", "2GFLOPs", "--worker", "-1"], "--worker -1 must be an integer in [0, 65536]"),
    ("floor NaN", {}, ["--budget", "2GFLOPs", "--floor", "nan"], "--floor nan must be between 0 and 1"),
    ("params NaN", {}, ["--budget", "2GFLOPs", "--params", "nan"], "--params 'nan' is not a quantity"),
    (
        "memory not bytes",
        {},
        ["--budget", "2GFLOPs", "--memory", "2GFLOPs"],
        "--memory '2GFLOPs': unit 'FLOPs' is not understood",
    ),
    ("memory below every network", {}, ["--budget", "2GFLOPs", "--memory", "1kB"], "--memory '1kB' (1 kB) is below"),
    ("latency no unit", {}, ["--latency", "150"], "--latency '150': unit '' is not understood"),
    ("latency not time", {}, ["--latency", "150GB"], "--latency '150GB': unit 'B' is not understood"),
    ("latency zero", {}, ["--latency", "0us"], "--latency '0us' must be a positive, finite quantity"),
    ("latency below every network", {}, ["--latency", "1ns"], "--latency '1ns' (1 ns) is below the latency"),
    ("latency with a bad budget", {}, ["--latency", "1ms", "--budget", "x"], "--budget 'x' is not a quantity"),
    ("objective unknown", {}, ["--latency", "1ms", "--objective", "capacity"], "--objective 'capacity'"),
    ("budget infinite", {}, ["--budget", "inf"], "--budget 'inf' is not a quantity"),
    ("objective three", {}, ["--budget", "2GFLOPs", "--objective", "flops,params,latency"], "give one or two of"),
    ("objective twice", {}, ["--budget", "2GFLOPs", "--objective", "flops,flops"], "give one or two of"),
    (
        "sampler cmaes two objectives",
        {},
        ["--budget", "2GFLOPs", "--objective", "throughput,params", "--sampler", "cmaes"],
        "supports one objective only",
    ),
    ("out empty", {}, ["--budget", "2GFLOPs", "--out", ""], "--out '' is empty"),
    ("traffic not a choice", {}, ["score", "tiny", "--traffic", "x"], "argument --traffic: invalid choice: 'x'"),
    ("convention not a choice", {}, ["score", "tiny", "--convention", "x"], "argument --convention: invalid choice"),
    ("unknown flag", {}, ["score", "tiny", "--frobnicate"], "unrecognized arguments: --frobnicate"),
    ("missing architecture", {}, ["score"], "the following arguments are required: arch"),
    (
        "json output unwritable",
        {},
        ["score", "tiny", "--json", "/proc/x/y.json"],
        "--json '/proc/x/y.json': cannot write",
    ),
    ("calibrate out not toml", {}, ["calibrate", "--out", "x"], "a platform file ends in .toml"),
    (
        "measured CSV naming no network",
        {"m.csv": "arch,latency_ms\ntiny,1\n\nnope,2\n" + "".join(f"x{i},1\n" for i in range(10))},
        ["calibrate", "--measured", "m.csv", "--platform", "v100", "--runtime", "cudnn"],
        "m.csv, line 4: ARCH 'nope' is not a known architecture",
    ),
    (
        "candidates naming no network",
        {"c.txt": "tiny\n# a comment\nnb201:|bogus~0|\n"},
        ["calibrate", "--select", "1", "--candidates", "c.txt", "--platform", "v100", "--runtime", "cudnn"],
        "c.txt, line 3: NB201 arch '|bogus~0|' has 1 nodes",
    ),
    ("spec a folder but no run", {"r/": None}, ["score", "r"], "ARCH 'r' is a folder without best_arch.json"),
    ("validate n negative", {}, ["validate", "--platform", "v100", "--n", "-1"], "--n -1 must be >= 0"),
]


@pytest.mark.parametrize(("case", "files", "argv", "message"), CLI_CASES, ids=[c[0] for c in CLI_CASES])
def test_cli_rejects_bad_input_in_one_line(
    case: str,
    files: dict[str, object],
    argv: list[str],
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    for name, content in files.items():
        path = tmp_path / name
        if name.endswith("/"):
            path.mkdir()
        elif content is FIFO:
            os.mkfifo(path)
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(str(content))
    if argv[0] not in ("score", "report", "ablate", "calibrate", "validate"):
        argv = [*argv, "--no-report"] + ([] if "--out" in argv else ["--out", "run"])
        argv += [] if "--trials" in argv else ["--trials", "1"]
    assert main(argv) == 2, case
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("explore: error: ") and message in err, err
    assert "Traceback" not in err
    named = {n.rstrip("/") for n in files} | {a.split("=")[0] for a in argv if a.startswith("-")}
    named |= {a for a in argv[1:] if "." in a or "/" in a} | {"argument"}
    assert any(n in err for n in named), f"the message names no file or flag: {err}"


def _api_cases() -> list[tuple[str, Callable[[], object], str]]:
    from explorer import analyze, get_platform, load_arch, load_space
    from explorer.search import Settings, load_result, plan_search
    from explorer.search.batch import BatchScorer
    from explorer.spec import Arch, Conv

    tiny = load_arch("tiny")
    return [
        ("analyze batch zero", lambda: analyze(tiny, batch=0), "batch=0 must be an integer >= 1"),
        ("analyze traffic", lambda: analyze(tiny, traffic="x"), "traffic='x' is not known; use one of: seed, rw"),
        ("analyze convention", lambda: analyze(tiny, convention="y"), "convention='y' is not known"),
        ("platform key", lambda: get_platform("a1000"), "'a1000' is not known"),
        ("empty arch", lambda: Arch(name="t", input_shape=(8, 8, 3), ops=()), "ops is empty"),
        (
            "zero-sized input",
            lambda: Arch(name="t", input_shape=(0, 8, 3), ops=(Conv(name="c", out=4),)),
            "input=[0, 8, 3]",
        ),
        ("zero kernel", lambda: Conv(name="c", out=4, kernel=0), "kernel=0 must be a positive integer"),
        ("space keep", lambda: load_space("tiny", keep=(0.0, 1.0)), "keep"),
        (
            "batch width off the lattice",
            lambda: BatchScorer(load_space("tiny"), check=0).score(np.array([[5, 4, 4, 8, 16]])),
            "width stem=5 is not a choice of space tiny (4..16 step 4)",
        ),
        (
            "study in an empty storage",
            lambda: load_result(_empty_journal()),
            "the storage holds 0 studies",
        ),
        (
            "a storage that is not there is not created",
            lambda: load_result(f"sqlite:///{tempfile.mkdtemp()}/typo.db"),
            "typo.db': no such file",
        ),
        ("plan: budget of a list", lambda: plan_search("tiny", "v100", [1]), "budget=[1] must be FLOPs per sample"),
        (
            "plan: timeout as text",
            lambda: plan_search("tiny", "v100", 3e6, settings=Settings(timeout_s="5")),
            "timeout_s='5'",
        ),
        (
            "plan: jobs as text",
            lambda: plan_search("tiny", "v100", 3e6, settings=Settings(jobs="2")),
            "jobs='2' must be",
        ),
        (
            "plan: gp or cmaes checked early",
            lambda: plan_search(
                "tiny", "v100", 3e6, settings=Settings(sampler="cmaes", objective=("throughput", "params"))
            ),
            "supports one objective only",
        ),
        (
            "plan: objective as a string",
            lambda: plan_search("tiny", "v100", 3e6, settings=Settings(objective="throughput")),
            "must be a tuple of objective names",
        ),
        ("space: widths on an arch with no searchable op", _one_dense_space, "(it has none)"),
    ]


def _empty_journal() -> str:
    path = Path(tempfile.mkdtemp()) / "empty.log"
    path.touch()
    return str(path)


def _one_dense_space() -> object:
    from explorer.space import build_space
    from explorer.spec import Arch, Dense

    arch = Arch(name="d", input_shape=(8,), ops=(Dense(name="fc", out=4),))
    return build_space(arch, overrides={"x*": {"keep": [0.5, 1.0]}})


@pytest.mark.parametrize("index", range(17))
def test_api_rejects_bad_input_with_one_line(index: int) -> None:
    _case, call, message = _api_cases()[index]
    with pytest.raises(ValueError, match=re.escape(message)) as info:
        call()
    assert "\n" not in str(info.value)


def test_the_table_covers_every_class_with_at_least_120_cases() -> None:
    assert len(CLI_CASES) + len(_api_cases()) >= 120
