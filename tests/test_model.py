"""GrooveVAE's shapes, ranges and loss; the reconstruction metrics on hand-made arrays."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rvae.checkpoint import Checkpoint
from rvae.errors import ConfigError, UserError
from rvae.generate import decode, interpolate
from rvae.grid import Grid
from rvae.kit import KITS
from rvae.latent import encode, grid_names, grid_points, latent_map
from rvae.metrics import onset_scores, timing_mae_ms, tolerant_f1, velocity_mae
from rvae.model import GrooveVAE, VAEConfig
from rvae.picture import ARROW, BACKGROUND, FIGURE_ORIGIN, map_figure, map_image

nan = float("nan")


def loops(*hits_per_loop, instruments=9, steps=72) -> torch.Tensor:
    """[(instrument, step, velocity 0..1, offset), ...] per loop -> (B, 3, instruments, steps)."""
    x = torch.zeros(len(hits_per_loop), 3, instruments, steps)
    for b, hits in enumerate(hits_per_loop):
        for inst, step, vel, off in hits:
            x[b, :, inst, step] = torch.tensor([1.0, vel, off])
    return x


BEMBE = [
    (0, 0, 0.9, 0.1),
    (8, 0, 0.7, 0.0),
    (8, 12, 0.6, -0.3),
    (8, 24, 0.8, 0.2),
    (1, 36, 0.8, 0.5),
    (8, 60, 0.5, -0.1),
]
BALLAD = [(0, 0, 1.0, 0.0), (2, 0, 0.6, 0.0), (2, 12, 0.5, 0.2), (1, 36, 0.9, 0.4), (2, 48, 0.5, -0.2)]


def small_model(**kw) -> GrooveVAE:
    torch.manual_seed(0)
    return GrooveVAE(VAEConfig(**{"instruments": 9, "steps": 72, "hidden": 32, **kw}))


# --- the model -----------------------------------------------------------------------------


def test_shapes_and_output_heads():
    model = small_model()
    x = loops(BEMBE, BALLAD, [])
    mean, logvar = model.encode(x)
    assert mean.shape == logvar.shape == (3, 2)
    z = torch.tensor([[0.0, 0.0], [40.0, -40.0], [-40.0, 40.0]])  # far out, where the heads saturate
    out = model.decode(z)
    assert out.shape == (3, 3, 9, 72)
    raw = model.decoder(z)
    torch.testing.assert_close(out[:, 0], torch.sigmoid(raw[:, 0]))  # onset probability
    torch.testing.assert_close(out[:, 1], torch.sigmoid(raw[:, 1]))  # velocity 0..1
    torch.testing.assert_close(out[:, 2], torch.tanh(raw[:, 2]))  # offset -1..1, either sign
    assert ((out[:, :2] >= 0) & (out[:, :2] <= 1)).all()
    assert (out[:, 2].abs() <= 1).all() and (out[:, 2] < 0).any() and (out[:, 2] > 0).any()


def test_loss_terms_are_finite_and_add_up():
    model = small_model(beta=0.5, w_velocity=2.0, w_offset=3.0)
    with torch.no_grad():
        parts = model.loss(loops(BEMBE, BALLAD, []), kl_weight=0.5, generator=torch.Generator().manual_seed(1))
    assert set(parts) == {"loss", "onset_bce", "velocity_se", "offset_se", "kl"}
    for name, v in parts.items():
        assert v.shape == () and math.isfinite(float(v)) and float(v) >= 0, name
    expected = parts["onset_bce"] + 2.0 * parts["velocity_se"] + 3.0 * parts["offset_se"] + 0.5 * 0.5 * parts["kl"]
    torch.testing.assert_close(parts["loss"], expected)


def test_dropout_acts_only_while_training_and_draws_nothing_at_zero():
    x = loops(BEMBE, BALLAD)
    z = torch.zeros(4, 2)
    model = small_model(dropout=0.5)
    model.eval()
    torch.testing.assert_close(model.encode(x)[0], model.encode(x)[0])  # eval: no unit dropped
    torch.testing.assert_close(model.decode(z), model.decode(z))
    model.train()
    assert not torch.equal(model.encode(x)[0], model.encode(x)[0])
    assert not torch.equal(model.decode(z)[:1], model.decode(z)[:1])
    plain = small_model()  # dropout 0: training draws no random numbers beyond the old ones
    plain.train()
    torch.manual_seed(5)
    plain.loss(x, generator=torch.Generator().manual_seed(0))
    after = torch.rand(1)
    torch.manual_seed(5)
    assert torch.equal(torch.rand(1), after)


def test_latent_noise_moves_z_beyond_the_posterior_sample():
    model = small_model()
    seen: list[torch.Tensor] = []
    model.decoder.register_forward_pre_hook(lambda module, args: seen.append(args[0].clone()))
    x = loops(BEMBE, BALLAD)
    with torch.no_grad():
        for noise in (0.0, 0.0, 3.0):
            model.loss(x, generator=torch.Generator().manual_seed(0), latent_noise=noise)
    torch.testing.assert_close(seen[0], seen[1])  # the same seed, no noise: the same z
    spread = (seen[2] - seen[0]).std().item()
    assert 1.0 < spread < 6.0  # noise of standard deviation 3 on top of the same sample


def test_velocity_and_offset_errors_count_only_on_true_onsets(monkeypatch):
    model = small_model()
    # Fix z, so that only the targets change between calls.
    monkeypatch.setattr(model, "encode", lambda x: (torch.zeros(len(x), 2), torch.zeros(len(x), 2)))

    @torch.no_grad()
    def loss(x):
        return model.loss(x, generator=torch.Generator().manual_seed(0))

    x = loops(BEMBE)
    base = loss(x)
    junk = x.clone()
    silent = junk[:, 0] == 0
    junk[:, 1][silent], junk[:, 2][silent] = 0.9, -0.7  # values where there is no hit
    for k in ("velocity_se", "offset_se"):
        assert float(loss(junk)[k]) == float(base[k]), k
    moved = x.clone()
    moved[0, 1, 8, 12], moved[0, 2, 8, 12] = 0.1, 0.9  # the same cells on a true onset
    assert float(loss(moved)["velocity_se"]) != float(base["velocity_se"])
    assert float(loss(moved)["offset_se"]) != float(base["offset_se"])
    empty = torch.zeros(1, 3, 9, 72)
    empty[:, 1:] = 0.5
    assert float(loss(empty)["velocity_se"]) == 0.0 and float(loss(empty)["offset_se"]) == 0.0


def test_n_params():
    # cells = 2 x 3 = 6, hidden 4, latent 2. Encoder: 3 x (6*4+4) + (12*4+4) + 2 x (4*2+2) = 156;
    # decoder: (2*4+4) + (4*12+12) + 3 x (4*6+6) = 162.
    assert GrooveVAE(VAEConfig(instruments=2, steps=3, hidden=4)).n_params() == 318
    assert GrooveVAE(VAEConfig()).n_params() == 1_726_500  # the default, on a 4/4 bar


def test_latent_dim_8():
    model = small_model(latent_dim=8)
    mean, logvar = model.encode(loops(BEMBE, BALLAD))
    assert mean.shape == logvar.shape == (2, 8)
    assert model.decode(torch.zeros(5, 8)).shape == (5, 3, 9, 72)
    with torch.no_grad():
        assert all(math.isfinite(float(v)) for v in model.loss(loops(BEMBE)).values())
    # Through the library: a 2-D point is padded with zeros, encoding gives all 8 dimensions.
    ckpt = Checkpoint(model.eval(), Grid((6, 8)), KITS["default"])
    groove = decode(ckpt, [0.5, -1.0])
    assert groove.onsets.shape == (9, 72) and groove.grid.meter == "6/8"
    np.testing.assert_array_equal(decode(ckpt, [0.5, -1.0, 0, 0, 0, 0, 0, 0]).onsets, groove.onsets)
    assert encode(ckpt, [groove]).shape == (1, 8)


def test_a_one_point_grid_is_the_centre_and_too_small_steps_or_cells_are_refused():
    np.testing.assert_array_equal(grid_points(1), [[[0.0, 0.0]]])  # not the corner (-3, 3)
    assert grid_names(1) == ["r0_c0_x+0.00_y+0.00.mid"]
    np.testing.assert_array_equal(grid_points(2)[0], [[-3.0, 3.0], [3.0, 3.0]])
    ckpt = Checkpoint(small_model().eval(), Grid((6, 8)), KITS["default"])
    a, b = decode(ckpt, [[0.0, 0.0], [1.0, 1.0]])
    with pytest.raises(ValueError, match="at least 2 loops"):
        interpolate(ckpt, a, b, steps=1)
    assert len(interpolate(ckpt, a, b, steps=2)) == 2
    with pytest.raises(ValueError, match="cell 2: a map cell needs 3 pixels or more"):
        map_image(ckpt, latent_map(ckpt, 2), cell=2)
    assert map_image(ckpt, latent_map(ckpt, 1), cell=3).shape == (3, 3, 3)


def test_map_figure_keeps_the_map_and_marks_the_loops_outside_it_on_its_edge():
    ckpt = Checkpoint(small_model().eval(), Grid((6, 8)), KITS["default"])
    probs = latent_map(ckpt, 4)
    x, y = FIGURE_ORIGIN
    right = slice(x + 40 + ARROW[0], x + 40 + ARROW[1] + 1)  # the band just right of a 40 px map

    ckpt.latents = torch.tensor([[0.0, 0.0]])
    plain = map_figure(ckpt, probs, cell=10)
    assert (plain[y : y + 40, x : x + 40] == map_image(ckpt, probs, cell=10)).all()
    assert (plain[y : y + 40, right] == BACKGROUND).all()

    ckpt.latents = torch.tensor([[0.0, 0.0], [7.0, 0.0]])  # far right, at mid height
    marked = map_figure(ckpt, probs, cell=10)
    drawn = (marked[y : y + 40, right] != BACKGROUND).any(axis=(1, 2))  # (40,) rows with ink
    assert drawn[17:22].all() and not drawn[:10].any() and not drawn[30:].any()
    assert (marked[y : y + 40, x : x + 40] == plain[y : y + 40, x : x + 40]).all()


# --- metrics ---------------------------------------------------------------------------------


def a(*rows) -> np.ndarray:
    """One loop, one row per instrument -> (1, instruments, steps)."""
    return np.array([rows], dtype=np.float32)


def close(got, want) -> bool:
    return (math.isnan(want) and math.isnan(got)) or got == pytest.approx(want)


@pytest.mark.parametrize(
    ("pred", "true", "want"),
    [
        (a([1, 1, 0, 0, 1, 0, 0, 0]), a([1, 0, 0, 0, 1, 0, 1, 0]), (2 / 3, 2 / 3, 2 / 3)),
        (a([1, 0, 0, 0], [0, 0, 1, 0]), a([1, 0, 0, 0], [0, 0, 0, 0]), (1 / 2, 1.0, 2 / 3)),
        (a([0, 1, 0, 0]), a([1, 0, 0, 0]), (0.0, 0.0, 0.0)),  # one step off is a miss on the exact grid
        (a([0, 0, 0, 0]), a([1, 0, 0, 0]), (nan, 0.0, 0.0)),  # nothing predicted: precision undefined
        (a([0, 0, 0, 0]), a([0, 0, 0, 0]), (nan, nan, nan)),
        (a([0.7, 0.2, 0, 0]), a([1, 1, 0, 0]), (1.0, 0.5, 2 / 3)),  # probabilities: > 0.5 is a hit
    ],
)
def test_onset_scores(pred, true, want):
    got = onset_scores(pred, true)
    assert all(close(g, w) for g, w in zip(got, want, strict=True)), got


@pytest.mark.parametrize(
    ("pred", "true", "want"),
    [
        (a([0, 1, 0, 0, 0, 1, 0, 0]), a([1, 0, 0, 0, 0, 0, 1, 0]), 1.0),  # one step late, one step early
        (a([0, 0, 1, 0, 0, 0, 0, 0]), a([1, 0, 0, 0, 0, 0, 0, 0]), 0.0),  # two steps: out of tolerance
        (a([0, 1, 1, 1, 0, 0, 0, 0]), a([0, 0, 1, 0, 0, 0, 0, 0]), 0.5),  # a true onset is matched once: 2*1/(3+1)
        (a([0, 0, 1, 0, 0, 0, 0, 0]), a([0, 1, 0, 1, 0, 0, 0, 0]), 2 / 3),  # a prediction too: 2*1/(1+2)
        (a([1, 0, 0, 0], [0, 0, 0, 0]), a([0, 0, 0, 0], [1, 0, 0, 0]), 0.0),  # another instrument's hit
        (a([0, 0, 0, 1]), a([1, 0, 0, 0]), 0.0),  # loops do not wrap
        # A 32nd-triplet roll (every 2 steps) played one step early, or late: every hit is near its own.
        (a([0, 1, 0, 1, 0, 1, 0, 0]), a([0, 0, 1, 0, 1, 0, 1, 0]), 1.0),
        (a([0, 0, 0, 1, 0, 1, 0, 1]), a([0, 0, 1, 0, 1, 0, 1, 0]), 1.0),
        (a([0, 0, 0, 0]), a([0, 0, 0, 0]), nan),
    ],
)
def test_tolerant_f1(pred, true, want):
    assert close(tolerant_f1(pred, true), want)


def test_tolerant_f1_exact_when_tolerance_is_zero():
    pred, true = a([0, 1, 0, 0, 1, 0]), a([1, 0, 0, 0, 1, 0])
    assert tolerant_f1(pred, true, tolerance=0) == pytest.approx(onset_scores(pred, true)[2]) == 0.5
    # Two steps from both true onsets: matches one of them at tolerance 2, none at 1.
    assert tolerant_f1(a([0, 0, 1, 0, 0, 0]), true, tolerance=2) == pytest.approx(2 / 3)
    assert tolerant_f1(a([0, 0, 1, 0, 0, 0]), true, tolerance=1) == 0.0


def test_velocity_mae_in_midi_units_on_true_onsets():
    pred = a([0.5, 0.9, 0.0, 0.2])
    true = a([0.6, 0.9, 0.0, 0.0])
    on = a([1, 1, 0, 0])  # the 0.2 where nothing was played does not count
    assert velocity_mae(pred, true, on) == pytest.approx(0.05 * 127)
    assert math.isnan(velocity_mae(pred, true, a([0, 0, 0, 0])))


def test_timing_mae_ms_at_each_loops_tempo():
    # 4 steps per quarter: at 120 BPM a step is 125 ms, so an offset of 1 (half a step) is 62.5 ms;
    # at 60 BPM it is 125 ms.
    pred = np.array([[[0.5, 0.0, 0.0]], [[0.0, -1.0, 0.3]]], np.float32)
    true = np.array([[[-0.5, 0.0, 0.0]], [[0.0, 0.0, 0.0]]], np.float32)
    on = np.array([[[1, 0, 0]], [[0, 1, 0]]], np.float32)
    assert timing_mae_ms(pred, true, on, np.array([120.0, 60.0]), 4) == pytest.approx((62.5 + 125.0) / 2)
    assert timing_mae_ms(pred[:1], true[:1], on[:1], np.array([120.0]), 24) == pytest.approx(62.5 / 6)
    assert math.isnan(timing_mae_ms(pred, true, np.zeros_like(on), np.array([120.0, 60.0]), 4))


# --- config checks ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("hidden", 0, "must be at least 1"),
        ("latent_dim", -2, "must be at least 1"),
        ("steps", 0, "must be at least 1"),
        ("beta", -0.1, "must not be negative"),
        ("w_offset", nan, "must not be negative"),
        ("dropout", 1.0, "must be at least 0 and below 1"),
        ("dropout", -0.1, "must be at least 0 and below 1"),
    ],
)
def test_vae_config_refuses_bad_fields_naming_them(field, value, problem):
    with pytest.raises(ConfigError) as e:
        VAEConfig(**{field: value})
    assert (e.value.field, e.value.problem) == (field, problem)
    assert str(e.value) == f"{field} {value:g}: {problem}"
    assert isinstance(e.value, UserError)
