"""Calorimeter observables (image pT and mass) and their W1 distances."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import SHARED_DATA

from sdd.metrics import calorimeter_w1, image_four_momentum, image_mass, image_pt, wasserstein_1d

GRID = np.linspace(-0.3875, 0.3875, 32)  # pixel centres of the shared 32x32 images


def brute_force(image, eta, phi):
    """Sum over pixels one by one: massless particles at (eta, phi) with pT = intensity."""
    e = px = py = pz = 0.0
    for i, h in enumerate(eta):
        for j, f in enumerate(phi):
            pt = float(image[i, j])
            e += pt * np.cosh(h)
            px += pt * np.cos(f)
            py += pt * np.sin(f)
            pz += pt * np.sinh(h)
    return np.hypot(px, py), np.sqrt(max(e * e - px * px - py * py - pz * pz, 0.0))


@pytest.mark.parametrize(("i", "j", "value"), [(0, 0, 1.0), (7, 30, 12.5), (16, 16, 0.3)])
def test_one_pixel_is_massless_with_its_pt(i, j, value):
    img = np.zeros((1, 32, 32))
    img[0, i, j] = value
    assert image_pt(img, eta=GRID, phi=GRID)[0] == pytest.approx(value, rel=1e-12)
    assert image_mass(img, eta=GRID, phi=GRID)[0] == pytest.approx(0.0, abs=1e-6 * value)
    e, px, py, pz = image_four_momentum(img, eta=GRID, phi=GRID)[0]
    assert e == pytest.approx(value * np.cosh(GRID[i]))
    assert pz == pytest.approx(value * np.sinh(GRID[i]))
    assert (px, py) == pytest.approx((value * np.cos(GRID[j]), value * np.sin(GRID[j])))


def test_two_symmetric_pixels_known_mass():
    intensity, k = 3.0, 5
    # same eta, phi = +-a: mass = 2 I sin(a), pT = 2 I cos(a)
    img = np.zeros((1, 32, 32))
    img[0, 10, k] = img[0, 10, 31 - k] = intensity
    a = GRID[31 - k]
    assert image_mass(img, eta=GRID, phi=GRID)[0] == pytest.approx(2 * intensity * np.sin(a))
    assert image_pt(img, eta=GRID, phi=GRID)[0] == pytest.approx(2 * intensity * np.cos(a))
    # same phi, eta = +-b: mass = 2 I sinh(b), pT = 2 I
    img = np.zeros((1, 32, 32))
    img[0, k, 4] = img[0, 31 - k, 4] = intensity
    b = GRID[31 - k]
    assert image_mass(img, eta=GRID, phi=GRID)[0] == pytest.approx(2 * intensity * np.sinh(b))
    assert image_pt(img, eta=GRID, phi=GRID)[0] == pytest.approx(2 * intensity)


def test_pair_mass_formula_random_positions():
    rng = np.random.default_rng(0)
    for _ in range(20):
        (i1, j1), (i2, j2) = rng.integers(0, 32, (2, 2))
        if (i1, j1) == (i2, j2):
            continue
        p1, p2 = rng.uniform(0.1, 50, 2)
        img = np.zeros((1, 32, 32))
        img[0, i1, j1], img[0, i2, j2] = p1, p2
        # massless pair: m^2 = 2 pT1 pT2 (cosh(d_eta) - cos(d_phi))
        m2 = 2 * p1 * p2 * (np.cosh(GRID[i1] - GRID[i2]) - np.cos(GRID[j1] - GRID[j2]))
        assert image_mass(img, eta=GRID, phi=GRID)[0] == pytest.approx(np.sqrt(m2), rel=1e-6)


def test_matches_pixel_by_pixel_sum_and_is_invariant():
    rng = np.random.default_rng(1)
    imgs = rng.exponential(size=(6, 8, 8)) * (rng.random((6, 8, 8)) < 0.3)
    eta, phi = np.linspace(-0.35, 0.35, 8), np.linspace(-0.35, 0.35, 8)
    pt, mass = image_pt(imgs, eta=eta, phi=phi), image_mass(imgs, eta=eta, phi=phi)
    expected = np.array([brute_force(img, eta, phi) for img in imgs])
    np.testing.assert_allclose(pt, expected[:, 0], rtol=1e-10)
    np.testing.assert_allclose(mass, expected[:, 1], rtol=1e-7, atol=1e-9)
    # a boost along the beam (eta shift) and a rotation in phi change neither
    np.testing.assert_allclose(image_pt(imgs, eta=eta + 1.3, phi=phi + 2.0), pt, rtol=1e-9)
    np.testing.assert_allclose(image_mass(imgs, eta=eta + 1.3, phi=phi + 2.0), mass, rtol=1e-6)
    # a channel axis of size 1 is accepted
    np.testing.assert_allclose(image_pt(imgs[:, None], eta=eta, phi=phi), pt)


def test_coordinate_errors():
    img = np.zeros((2, 4, 4))
    with pytest.raises(ValueError, match="bin edges have one more value"):
        image_pt(img, eta=np.linspace(-1, 1, 5), phi=np.zeros(4))
    with pytest.raises(ValueError, match=r"\(N, H, W\)"):
        image_mass(np.zeros((4, 4)), eta=np.zeros(4), phi=np.zeros(4))


def test_wasserstein_1d():
    rng = np.random.default_rng(2)
    a = rng.exponential(size=500)
    assert wasserstein_1d(a, a) == 0.0
    assert wasserstein_1d(a, a + 0.7) == pytest.approx(0.7)
    assert wasserstein_1d(a, rng.permutation(a)) == 0.0
    with pytest.raises(ValueError, match="non-empty"):
        wasserstein_1d([], a)
    with pytest.raises(ValueError, match="NaN"):
        wasserstein_1d([np.nan], a)


def test_calorimeter_w1_per_class():
    rng = np.random.default_rng(3)
    real = rng.exponential(size=(60, 6, 6)) * (rng.random((60, 6, 6)) < 0.2)
    labels = np.repeat([0, 1], 30)
    eta = phi = np.linspace(-0.3, 0.3, 6)
    table = calorimeter_w1(
        real,
        real,
        eta=eta,
        phi=phi,
        real_labels=labels,
        generated_labels=labels,
        class_names={0: "background", 1: "signal"},
    )
    assert list(table.index) == ["background", "signal", "all"]
    assert (table[["W1_pt", "W1_mass"]].to_numpy() == 0).all()
    assert table.loc["signal", "n_real"] == 30 and table.loc["all", "n_generated"] == 60
    # doubling every intensity doubles pT and mass, so W1 equals the mean of each
    table = calorimeter_w1(
        real, 2 * real, eta=eta, phi=phi, real_labels=labels, generated_labels=labels
    )
    sig = labels == 1
    assert table.loc["1", "W1_pt"] == pytest.approx(image_pt(real[sig], eta=eta, phi=phi).mean())
    assert table.loc["1", "W1_mass"] == pytest.approx(
        image_mass(real[sig], eta=eta, phi=phi).mean()
    )
    with pytest.raises(ValueError, match="both"):
        calorimeter_w1(real, real, eta=eta, phi=phi, real_labels=labels)
    with pytest.raises(ValueError, match="Class 0 has no generated images"):
        calorimeter_w1(
            real, real, eta=eta, phi=phi, real_labels=labels, generated_labels=labels + 1
        )
    with pytest.raises(ValueError, match="differ in size"):
        calorimeter_w1(real, real[:, :5], eta=eta, phi=phi)


def test_readme_values_on_shared_file():
    path = SHARED_DATA / "calorimeter" / "muon_isolation_sim.npz"
    if not path.is_file():
        pytest.skip("shared calorimeter data not available")
    from sdd.datasets import read_calorimeter

    data = read_calorimeter(path)
    pt = image_pt(data.images, eta=data.eta, phi=data.phi)
    mass = image_mass(data.images, eta=data.eta, phi=data.phi)
    # calorimeter/README.md: signal 2.25 / 0.47 GeV, background 12.66 / 2.39 GeV (means)
    for label, (pt_mean, mass_mean) in {1: (2.25, 0.47), 0: (12.66, 2.39)}.items():
        sel = data.labels == label
        assert pt[sel].mean() == pytest.approx(pt_mean, abs=0.006)
        assert mass[sel].mean() == pytest.approx(mass_mean, abs=0.006)
