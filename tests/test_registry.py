from pathlib import Path

import pytest

from training.config import OWN, REGISTRY, GANConfig, get_config
from training.models import build_discriminator, build_generator

# (G, D) parameter counts of the articles' Keras code, computed from their layer lists;
# article 004 prints its own summaries (G 122, D 101).
ARTICLE_COUNTS = {
    "dcgan-mnist": (1_164_289, 40_705),
    "mlp-mnist": (114_064, 100_609),
    "mlp-smooth-mnist": (1_486_352, 533_505),
    "mlp-fashion": (1_486_352, 1_460_225),
    "gan-1d": (122, 101),
}


def test_registry_holds_the_five_seed_systems_with_the_articles_counts():
    articles = {name: cfg for name, cfg in REGISTRY.items() if cfg.article != OWN}
    assert set(ARTICLE_COUNTS) == set(articles)
    # The registry's own figures (used by export's mismatch check) are the articles'.
    assert {name: cfg.param_counts for name, cfg in articles.items()} == ARTICLE_COUNTS


def test_gan_edges_own_systems_are_conditional_on_each_image_data_set():
    own = [cfg for cfg in REGISTRY.values() if cfg.article == OWN]
    assert {cfg.dataset for cfg in own} == {"mnist", "fashion_mnist"}
    assert all(cfg.conditional and cfg.n_classes == 10 for cfg in own)
    assert not any(cfg.conditional for cfg in REGISTRY.values() if cfg.article != OWN)


@pytest.mark.parametrize("name", sorted(n for n, c in REGISTRY.items() if c.conditional))
@pytest.mark.parametrize("d_conditioning", ["projection", "concat"])
def test_conditional_networks_take_a_label_beside_z_and_x(name, d_conditioning):
    import dataclasses

    import numpy as np
    cfg = dataclasses.replace(get_config(name), d_conditioning=d_conditioning)
    g, d = build_generator(cfg), build_discriminator(cfg)
    assert [tuple(i.shape) for i in g.inputs] == [(None, cfg.latent_dim), (None,)]
    assert g.output_shape == (None, *cfg.sample_shape)
    labels = np.arange(4, dtype="int32")
    x = g([np.zeros((4, cfg.latent_dim), "float32"), labels]).numpy()
    p = d([x, labels]).numpy()
    assert p.shape == (4, 1) and np.all((p > 0) & (p < 1))
    # the label changes the sample: a generator that ignored it would be unconditional
    other = g([np.zeros((4, cfg.latent_dim), "float32"), labels[::-1].copy()]).numpy()
    assert not np.allclose(x, other)
    # the label changes D's judgement of the same images: a D that ignored it would judge
    # realism alone, and G would learn no class from it (there a change is exactly 0; here
    # it is about 1e-2 on average)
    lo, hi = cfg.output_range
    images = np.random.default_rng(0).uniform(lo, hi, (20, *cfg.sample_shape)).astype("float32")
    asked = np.arange(20, dtype="int32") % cfg.n_classes
    judged = [d([images, k]).numpy() for k in (asked, (asked + 5) % cfg.n_classes)]
    assert np.abs(judged[0] - judged[1]).mean() > 1e-4
    assert g.count_params() < 1_000_000  # its int8 file stays under 1 MB


@pytest.mark.parametrize("name", sorted(ARTICLE_COUNTS))
def test_each_entry_builds_with_the_articles_parameter_counts_and_shapes(name):
    cfg = get_config(name)
    g, d = build_generator(cfg), build_discriminator(cfg)
    assert (g.count_params(), d.count_params()) == ARTICLE_COUNTS[name]
    assert g.input_shape == (None, cfg.latent_dim)
    assert g.output_shape == (None, *cfg.sample_shape)
    assert d.input_shape == (None, *cfg.sample_shape)
    assert d.output_shape == (None, 1)


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(ValueError, match="known: dcgan-mnist, mlp-mnist"):
        get_config("nope")


def test_article_001_smooths_its_real_labels():
    assert get_config("mlp-smooth-mnist").real_label == 0.9


def test_config_round_trips_through_json_types():
    import json
    cfg = get_config("dcgan-mnist")
    assert GANConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


@pytest.mark.parametrize("avx512", [False, True])
def test_the_dcgan_train_step_takes_the_path_measured_fastest_on_each_cpu(monkeypatch, avx512):
    """benchmarks/results/train-step-*.md: on AVX2, XLA and both kinds of reformulated
    layers; on AVX-512, no XLA and only the last conv reformulated (with --xla forced there,
    both); the MLPs always compile with XLA; across replicas nothing does."""
    import training.acceleration
    from training.acceleration import LAST_CONV, REFORMULATIONS, Acceleration
    monkeypatch.setattr(training.acceleration, "has_avx512", lambda: avx512)
    dcgan, mlp = get_config("dcgan-mnist"), get_config("mlp-fashion")
    assert Acceleration.decide(dcgan) == (Acceleration(False, (LAST_CONV,)) if avx512
                                          else Acceleration(True, REFORMULATIONS))
    assert Acceleration.decide(mlp) == Acceleration(True, ())
    assert Acceleration.decide(dcgan, xla=True) == Acceleration(True, REFORMULATIONS)
    assert not Acceleration.decide(mlp, replicas=2).xla
    conditional = get_config("cgan-mnist")  # its step, too, is slower with XLA on AVX-512
    assert Acceleration.decide(conditional) == Acceleration(not avx512, ())
    assert Acceleration.decide(conditional, xla=True) == Acceleration(True, ())


def test_the_committed_records_configs_load_under_the_fields_names():
    """config.json keeps g_units, d_units and batch_size; GANConfig calls them g_widths,
    d_widths and epoch_batch."""
    import json
    records = sorted((Path(__file__).parent.parent / "docs" / "records").glob("*/config.json"))
    assert records
    for path in records:
        saved = json.loads(path.read_text())["config"]
        cfg = GANConfig.from_dict(saved)
        assert (cfg.g_widths, cfg.d_widths, cfg.epoch_batch) == \
            (tuple(saved["g_units"]), tuple(saved["d_units"]), saved["batch_size"])
        written = json.loads(json.dumps(cfg.to_dict()))
        assert {k: written.get(k) for k in saved} == saved  # every field, under its name
