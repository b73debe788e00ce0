"""The Flax model built from a spec: parameter counts equal the analytic ones; it runs."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest
from flax import nnx

from explorer.cost.analyze import analyze
from explorer.model import abstract_model, build_model, param_count
from explorer.spec import Arch


def test_every_base_architecture_param_count_equals_analytic(base_archs: dict[str, Arch]) -> None:
    for name, arch in base_archs.items():
        assert param_count(abstract_model(arch)) == analyze(arch).params, name


def test_initial_weights_are_drawn_as_flaxs_initialisers_draw_them_and_compile_nothing(
    base_archs: dict[str, Arch], caplog: pytest.LogCaptureFixture
) -> None:
    """Kernels against Flax's own `lecun_normal` on the same shapes (two-sample Kolmogorov-Smirnov),
    every other weight against Flax's module defaults; one seed, one set of weights; and building a
    network of shapes never seen before compiles no XLA program (an initialiser per shape cost 0.25 s)."""
    import logging

    import numpy as np
    from scipy.stats import ks_2samp

    arch = base_archs["resnet18"]
    build_model(base_archs["tiny"], rngs=nnx.Rngs(2))  # the key's own small programs compile once
    with caplog.at_level(logging.WARNING), jax.log_compiles():
        model = build_model(arch, rngs=nnx.Rngs(3))
    assert not [r for r in caplog.records if "Compiling" in r.getMessage()]
    flax_model = nnx.eval_shape(lambda: build_model(arch))  # under a trace: Flax's own modules
    # the shapes-only model build_model filled is a copy: the next one is still shapes only
    assert all(isinstance(leaf, jax.ShapeDtypeStruct) for leaf in jax.tree.leaves(nnx.state(abstract_model(arch))))
    ours = dict(nnx.iter_graph(model))
    compared = {(7, 7, 3, 64), (3, 3, 256, 256), (1, 1, 128, 256), (512, 1000)}  # stem, 3x3, 1x1, dense
    for path, variable in nnx.iter_graph(flax_model):
        if not isinstance(variable, nnx.Variable):
            continue
        value = np.asarray(ours[path][...])
        assert value.shape == variable.shape and value.dtype == variable.dtype, path
        if path[-1] == "kernel":
            if value.shape in compared:  # one per shape: Flax's initialiser compiles per shape
                reference = np.asarray(nnx.initializers.lecun_normal()(jax.random.key(7), value.shape))
                assert ks_2samp(value.ravel(), reference.ravel()).pvalue > 1e-4, path
            fan_in = np.prod(value.shape[:-1])  # HWIO: all but the outputs
            assert np.abs(value).max() <= 2 / np.sqrt(fan_in) / 0.8796256610342398 * (1 + 1e-6)
        else:  # nnx.Conv/Linear bias 0; nnx.BatchNorm scale 1, bias 0, mean 0, var 1
            default = {"bias": 0.0, "scale": 1.0, "mean": 0.0, "var": 1.0}[path[-1]]
            assert np.all(value == default), path
    tiny = base_archs["tiny"]
    kernel = np.asarray(build_model(tiny, rngs=nnx.Rngs(3)).layers["grouped"].kernel[...])
    assert np.array_equal(kernel, np.asarray(build_model(tiny, rngs=nnx.Rngs(3)).layers["grouped"].kernel[...]))
    assert not np.array_equal(kernel, np.asarray(build_model(tiny, rngs=nnx.Rngs(4)).layers["grouped"].kernel[...]))
    half = build_model(tiny, param_dtype=jnp.bfloat16)
    assert {leaf.dtype for leaf in jax.tree.leaves(nnx.state(half, nnx.Param))} == {jnp.dtype(jnp.bfloat16)}
    # init="flax": Flax's own draws, the values the module itself holds when built eagerly
    from explorer.model import Network
    from explorer.spec import Conv, Dense, GlobalAvgPool

    small = Arch(
        name="small",
        input_shape=(6, 6, 3),
        ops=(Conv(name="c", out=5), GlobalAvgPool(name="g"), Dense(name="d", out=4)),
    )
    flax_drawn = nnx.state(build_model(small, rngs=nnx.Rngs(5), init="flax"))
    eager = nnx.state(Network(small, rngs=nnx.Rngs(5)))
    assert all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(flax_drawn), jax.tree.leaves(eager), strict=True))
    traced = nnx.state(nnx.jit(lambda r: build_model(small, rngs=r))(nnx.Rngs(5)))  # Flax's draws, from the same key
    assert all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(traced), jax.tree.leaves(eager), strict=True))
    with pytest.raises(ValueError, match="init='jax' is not known; use one of: host, flax"):
        build_model(small, init="jax")


@pytest.mark.parametrize("name", ["tiny", "resnet18"])
def test_forward_pass_output_shape(name: str, base_archs: dict[str, Arch]) -> None:
    arch = base_archs[name]
    graph, state = nnx.split(build_model(arch, rngs=nnx.Rngs(1)))
    y = jax.jit(lambda st, x: nnx.merge(graph, st)(x))(state, jnp.ones((2, *arch.input_shape)))
    assert y.shape == (2, *arch.output_shape)
    assert bool(jnp.isfinite(y).all())


def test_intermediate_shapes_match_the_spec(base_archs: dict[str, Arch]) -> None:
    arch = base_archs["googlenet"]
    for cut in ("maxpool1", "maxpool2", "inception3b.concat", "maxpool4", "inception5b.concat"):
        index = next(i for i, op in enumerate(arch.ops) if op.name == cut)
        prefix = Arch(name="prefix", input_shape=arch.input_shape, ops=arch.ops[: index + 1])
        graph, state = nnx.split(abstract_model(prefix))
        x = jax.ShapeDtypeStruct((1, *arch.input_shape), jnp.float32)
        out = jax.eval_shape(lambda st, inp, g=graph: nnx.merge(g, st)(inp), state, x)
        assert out.shape[1:] == prefix.output_shape, cut


def test_strides_per_axis_and_pools_at_their_padding_limit_run_as_the_spec_says() -> None:
    """The built model's shapes are the spec's with a stride per axis, and a pool padded by half
    its kernel (the most the spec allows) gives finite outputs (more would give -inf or 0/0)."""
    from explorer.spec import arch_from_dict

    arch = arch_from_dict(
        {
            "name": "t",
            "input": [17, 23, 3],
            "ops": [
                {"name": "c", "kind": "conv", "out": 4, "kernel": [3, 5], "stride": [2, 3]},
                {"name": "m", "kind": "maxpool", "kernel": [2, 3], "padding": [1, 1]},
                {"name": "a", "kind": "avgpool", "kernel": [3, 2], "stride": [1, 2], "padding": [1, 1]},
                {"name": "gap", "kind": "gap"},
            ],
        }
    )
    model = build_model(arch, rngs=nnx.Rngs(0))
    for cut in ("c", "m", "a"):
        index = next(i for i, op in enumerate(arch.ops) if op.name == cut)
        prefix = Arch(name="prefix", input_shape=arch.input_shape, ops=arch.ops[: index + 1])
        out = build_model(prefix, rngs=nnx.Rngs(0))(-jnp.ones((1, *arch.input_shape)))
        assert out.shape[1:] == prefix.output_shape, cut
        assert bool(jnp.isfinite(out).all()), cut
    assert param_count(model) == analyze(arch).params


def test_wrong_input_shape_is_refused(base_archs: dict[str, Arch]) -> None:
    model = build_model(base_archs["tiny"])
    with pytest.raises(ValueError, match="does not match"):
        model(jnp.ones((1, 16, 16, 3)))


def test_public_api_names() -> None:
    import explorer

    arch = explorer.load_arch("tiny")
    result = explorer.analyze(arch, platform="v100", dtype="float32", batch=1, traffic="seed")
    model = explorer.build_model(arch, rngs=nnx.Rngs(0))
    assert param_count(model) == result.params
    for key in ("macs", "flops", "params", "bytes", "intensity", "attainable_flops_per_s", "latency_s"):
        assert getattr(result, key) > 0


def test_searched_architectures_with_bottlenecks_build_with_the_analytic_param_count() -> None:
    """Every slot on, random widths: googlenet's inserted 1x1s sit beside its own '.reduce' convs."""
    from explorer.search.batch import BatchScorer
    from explorer.space import load_space

    for name in ("googlenet", "resnet50", "vgg16"):
        space = load_space(name)
        scorer = BatchScorer(space, check=0)
        widths, reductions = scorer.random(2, seed=3, bottleneck_share=1.0)
        for w, r in zip(widths, reductions, strict=True):
            arch = space.apply(
                {g.key: int(v) for g, v in zip(space.groups, w, strict=True)},
                {s.op: int(v) for s, v in zip(space.bottlenecks, r, strict=True)},
            )
            assert param_count(abstract_model(arch)) == analyze(arch).params, name


def test_an_op_name_that_a_bottleneck_would_reuse_is_refused() -> None:
    from explorer.spec import Conv, SpecError

    with pytest.raises(SpecError, match=r"'c.bottleneck' is used twice \(by an op and a bottleneck it inserts\)"):
        Arch(
            name="t",
            input_shape=(8, 8, 3),
            ops=(Conv(name="c.bottleneck", out=4), Conv(name="c", out=4, bottleneck=2)),
        )


def test_the_global_average_pool_is_the_mean_and_no_fusion_joins_it_to_a_convolution() -> None:
    """The pool (a dot with a 1/n vector) equals the mean over the spatial axes, and in the compiled
    ResNet-18 no fusion holds both a convolution and a reduction: XLA:CPU's YNN fusion merged a
    `mean` there with layer3-4's convolutions into one fusion twice as slow as its parts."""
    import re

    import numpy as np

    from explorer.model import BUILDERS
    from explorer.space import load_space
    from explorer.spec import GlobalAvgPool

    x = jax.random.normal(jax.random.key(0), (2, 7, 5, 3))
    pooled = BUILDERS[GlobalAvgPool].apply(None, None, [x])  # type: ignore[arg-type]
    np.testing.assert_allclose(pooled, x.mean(axis=(1, 2)), rtol=1e-6, atol=1e-6)

    arch = load_space("resnet18").uniform(0.25)
    graph, state = nnx.split(abstract_model(arch))
    state = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), state)
    x = jnp.ones((1, *arch.input_shape))
    text = jax.jit(lambda st, inp: nnx.merge(graph, st)(inp)).lower(state, x).compile().as_text()
    bodies = re.split(r"\n\n+", text)
    assert text.count(" convolution(") == 20  # every conv of the network, somewhere
    assert not [b.splitlines()[0] for b in bodies if "convolution(" in b and re.search(r"\breduce\(", b)]
