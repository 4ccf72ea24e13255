"""Zero-sum matrix games: exact LP path, batched JAX IPM, loading. Oracles are independent."""

from __future__ import annotations

import logging
from fractions import Fraction

import jax
import numpy as np
import pytest
import scipy.optimize

from minimax.errors import GameSpecError, SolverError
from minimax.finite import (
    BatchSolution,
    IPMOptions,
    MatrixGameSolution,
    load_matrix,
    zero_sum,
    zero_sum_batch,
)

SOLVERS = ("highs-direct", "HIGHS", "CLARABEL")


def oracle_value(A: np.ndarray) -> float:
    """Game value from the *attacker's* LP (the dual of the one the library solves).

    max w  s.t.  w - (A y)_i <= 0 for every row i,  1^T y = 1,  y >= 0.
    """
    m, n = A.shape
    c = np.zeros(n + 1)
    c[-1] = -1.0
    a_ub = np.hstack([-A, np.ones((m, 1))])
    a_eq = np.hstack([np.ones((1, n)), np.zeros((1, 1))])
    res = scipy.optimize.linprog(
        c,
        A_ub=a_ub,
        b_ub=np.zeros(m),
        A_eq=a_eq,
        b_eq=[1.0],
        bounds=[(0, None)] * n + [(None, None)],
        method="highs",
    )
    assert res.status == 0
    return -res.fun


def exploitability(A: np.ndarray, x: np.ndarray, y: np.ndarray) -> float:
    return float(np.max(x @ A) - np.min(A @ y))


def exact_exploitability(A: np.ndarray, x: np.ndarray, y: np.ndarray) -> Fraction:
    """Exploitability of x / sum(x), y / sum(y) in rational arithmetic (no rounding at all)."""
    Aq = [[Fraction(float(v)) for v in row] for row in A]
    xq = [Fraction(float(v)) for v in x]
    yq = [Fraction(float(v)) for v in y]
    sx, sy = sum(xq), sum(yq)
    m, n = A.shape
    upper = max(sum(xq[i] * Aq[i][j] for i in range(m)) / sx for j in range(n))
    lower = min(sum(Aq[i][j] * yq[j] for j in range(n)) / sy for i in range(m))
    return upper - lower


def _games() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(20260101)
    dominated = rng.standard_normal((4, 5))
    dominated = np.vstack([dominated, dominated[0] + 1.0])  # row 4 strictly dominated by row 0
    return {
        "random_6x6": rng.standard_normal((6, 6)),
        "random_9x4": rng.standard_normal((9, 4)),
        "random_4x9": rng.standard_normal((4, 9)),
        "random_40x40": rng.standard_normal((40, 40)),
        "integer_ties_7x7": rng.integers(-2, 3, size=(7, 7)).astype(float),
        "constant_3x4": np.full((3, 4), 2.5),
        "zeros_2x2": np.zeros((2, 2)),
        "dominated_5x5": dominated,
        "row_1x5": rng.standard_normal((1, 5)),
        "column_5x1": rng.standard_normal((5, 1)),
        "scalar_1x1": np.array([[-3.0]]),
        "saddle_point": np.array([[3.0, 1.0, 4.0], [5.0, 2.0, 6.0], [0.0, -1.0, 2.0]]),
        "large_scale": 1e4 * rng.standard_normal((5, 5)),
    }


GAMES = _games()


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("name", sorted(GAMES))
def test_exact_value_matches_scipy_oracle(solver: str, name: str) -> None:
    A = GAMES[name]
    sol = zero_sum(A, solver=solver)
    assert isinstance(sol, MatrixGameSolution)
    scale = max(1.0, float(np.abs(A).max()))
    assert sol.value == pytest.approx(oracle_value(A), abs=1e-8 * scale)
    # Strategies are on the simplex and certify the value.
    for p, k in ((sol.x, A.shape[0]), (sol.y, A.shape[1])):
        assert p.shape == (k,) and np.all(p >= 0) and p.sum() == pytest.approx(1.0, abs=1e-12)
    # The reported exploitability bounds the exact one from above, by at most the round-off.
    exact = exact_exploitability(A, sol.x, sol.y)
    assert exact <= Fraction(sol.exploitability) <= exact + Fraction(1e-13 * scale)
    assert 0.0 <= sol.exploitability <= 1e-7 * scale
    assert sol.lower <= sol.value <= sol.upper and sol.status == "certified"


def test_classic_values() -> None:
    pennies = np.array([[1.0, -1.0], [-1.0, 1.0]])
    rps = np.array([[0.0, 1.0, -1.0], [-1.0, 0.0, 1.0], [1.0, -1.0, 0.0]])
    for A, k in ((pennies, 2), (rps, 3)):
        sol = zero_sum(A)
        assert sol.value == pytest.approx(0.0, abs=1e-12)
        np.testing.assert_allclose(sol.x, np.full(k, 1.0 / k), atol=1e-9)
        np.testing.assert_allclose(sol.y, np.full(k, 1.0 / k), atol=1e-9)


@pytest.mark.parametrize("solver", SOLVERS)
def test_biased_rps_openspiel(solver: str) -> None:
    # OpenSpiel lp_solver_test: the row player *maximises* payoff P and plays (1, 10, 5) / 16.
    # Here the row player minimises a loss, so the loss matrix is A = -P. P is antisymmetric,
    # so the game is symmetric: value 0 and the column player plays the same mixture.
    P = np.array([[0.0, -0.25, 0.5], [0.25, 0.0, -0.05], [-0.5, 0.05, 0.0]])
    sol = zero_sum(-P, solver=solver)
    expected = np.array([1.0, 10.0, 5.0]) / 16.0
    assert sol.value == pytest.approx(0.0, abs=1e-9)
    np.testing.assert_allclose(sol.x, expected, atol=1e-7)
    np.testing.assert_allclose(sol.y, expected, atol=1e-7)
    # Independent check of the published strategy: it equalises every column at 0.
    np.testing.assert_allclose(expected @ P, 0.0, atol=1e-15)


@pytest.mark.parametrize("solver", ["HIGHS", "CLARABEL"])
def test_cached_cvxpy_problem_sees_each_new_matrix(solver: str) -> None:
    # The cvxpy problem is built once per shape and re-solved with a new parameter value; a stale
    # parameter would return the previous game's value.
    rng = np.random.default_rng(1)
    for _ in range(3):
        A = rng.standard_normal((5, 6))
        assert zero_sum(A, solver=solver).value == pytest.approx(oracle_value(A), abs=1e-8)


def test_solver_failure_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    class Failed:
        status, message = 4, "numerical difficulties"

    monkeypatch.setattr(scipy.optimize, "linprog", lambda *a, **k: Failed())
    with pytest.raises(SolverError, match="status 4"):
        zero_sum(np.eye(3))


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        (np.array([[1.0, np.nan], [0.0, 1.0]]), r"A\[0, 1\] = nan"),
        (np.array([[1.0, 0.0], [np.inf, 1.0]]), r"A\[1, 0\] = inf"),
        (np.ones(3), "2-D"),
        (np.ones((2, 2, 2)), "2-D"),
        (np.ones((0, 3)), r"shape \(0, 3\)"),
        ([["a", "b"]], "float64"),
        (np.array([[1.0, 2.0 + 1e-3j]]), r"A must be real.*A\[0, 1\] = \(2\+0\.001j\)"),
        ([[1.0, 2j]], "A must be real"),
    ],
)
def test_zero_sum_bad_input(bad: object, match: str) -> None:
    with pytest.raises(GameSpecError, match=match):
        zero_sum(bad)


@pytest.mark.parametrize("solver", SOLVERS)
def test_zero_sum_at_payoffs_near_1e15(solver: str) -> None:
    """cvxpy's HiGHS interface failed here with a raw ValueError ("Cannot unpack invalid
    solution"); every back-end now sees the game rescaled to [0, 1]."""
    A = np.random.default_rng(0).standard_normal((5, 5)) * 1e15
    sol = zero_sum(A, solver=solver)
    # (the oracle's LP needs the payoffs in unit scale: HiGHS calls 1e15 a model error)
    rel = 1e-7 if solver == "CLARABEL" else 1e-13  # an interior-point answer vs a vertex
    assert sol.value == pytest.approx(1e15 * oracle_value(A / 1e15), rel=rel)
    assert sol.exploitability <= rel * np.abs(A).max()
    exact = exact_exploitability(A, sol.x, sol.y)
    assert exact <= Fraction(sol.exploitability)
    # A tol below the float64 resolution of these payoffs is reported as missed, not met.
    assert zero_sum(A, solver=solver, tol=1e-6).status == (
        "certified" if sol.exploitability <= 1e-6 else "gap_above_tol"
    )
    assert sol.exploitability > 1e-6  # (so the line above checked "gap_above_tol")


def test_payoffs_at_the_float64_limit() -> None:
    """Matching pennies at +-1.7e308: every float64 sum of payoffs overflows, so the certificate
    comes from exact arithmetic (value 0, exploitability 0, uniform strategies)."""
    A = np.array([[1.7e308, -1.7e308], [-1.7e308, 1.7e308]])
    sol = zero_sum(A)
    assert (sol.value, sol.exploitability, sol.status) == (0.0, 0.0, "certified")
    np.testing.assert_array_equal(sol.x, [0.5, 0.5])
    batch = zero_sum_batch(np.stack([A, -A / 2]), tol=1e-6)
    assert batch.status.tolist() == ["certified", "certified"]
    np.testing.assert_array_equal(batch.exploitability, [0.0, 0.0])


def test_cvxpy_backend_failure_is_a_named_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import cvxpy as cp

    def fail(self, *args, **kwargs):
        raise ValueError("Cannot unpack invalid solution")

    monkeypatch.setattr(cp.Problem, "solve", fail)
    with pytest.raises(SolverError, match=r"cvxpy\+HIGHS failed .*ValueError.*highs-direct"):
        zero_sum(np.eye(3), solver="HIGHS")


def test_zero_sum_unknown_solver() -> None:
    with pytest.raises(GameSpecError, match="solver must be one of"):
        zero_sum(np.eye(2), solver="ECOS")


# --- batched interior-point method ------------------------------------------------------------


def _check_batch(As: np.ndarray, sol: BatchSolution, tol: float) -> None:
    k, m, n = As.shape
    assert sol.x.shape == (k, m) and sol.y.shape == (k, n)
    assert np.all(sol.x >= 0) and np.all(sol.y >= 0)
    np.testing.assert_allclose(sol.x.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(sol.y.sum(axis=1), 1.0, atol=1e-12)
    # The reported exploitability is the one the returned strategies have, rounded up: at
    # least the exact value (checked in rationals on a sample), at most round-off above it.
    upper = np.einsum("bm,bmn->bn", sol.x, As).max(axis=1)
    lower = np.einsum("bmn,bn->bm", As, sol.y).min(axis=1)
    scale = np.maximum(1.0, np.abs(As).max(axis=(1, 2)))
    recomputed = np.maximum(upper - lower, 0.0)
    assert np.all(sol.exploitability - recomputed <= 1e-14 * scale * (m + n))
    assert np.all(sol.lower <= sol.value) and np.all(sol.value <= sol.upper)
    for i in np.linspace(0, k - 1, min(k, 6)).astype(int):
        exact = exact_exploitability(As[i], sol.x[i], sol.y[i])
        assert exact <= Fraction(float(sol.exploitability[i]))
    np.testing.assert_array_equal(sol.converged, sol.exploitability <= tol)
    np.testing.assert_array_equal(sol.status == "certified", sol.converged)


def test_batch_1000_random_20x20_meets_tolerance() -> None:
    rng = np.random.default_rng(7)
    As = rng.standard_normal((1000, 20, 20))
    sol = zero_sum_batch(As, tol=1e-6)
    _check_batch(As, sol, 1e-6)
    assert sol.converged.all()
    assert sol.exploitability.max() <= 1e-6
    assert sol.iterations.max() <= 30
    # Values agree with the exact oracle to within half the certified exploitability.
    for k in range(0, 1000, 125):
        assert abs(sol.value[k] - oracle_value(As[k])) <= sol.exploitability[k] / 2 + 1e-12


# Small batch tests share one shape, (50, 6, 3) or its transpose, so they share one compilation.
SMALL = (50, 6, 3)


# Chunks of 16 games of 6 x 3: several chunks, a padded last one and a straggler pass.
SMALL_CHUNKS = IPMOptions(chunk_bytes=8 * 6 * 3 * 16)


def test_batch_result_does_not_depend_on_chunks_or_order() -> None:
    """Chunks of 16 games (the last one padded) and the straggler pass give the same per-game
    answers as one chunk holding the games in reverse order."""
    rng = np.random.default_rng(21)
    As = rng.standard_normal(SMALL)
    one_chunk = zero_sum_batch(As[::-1], tol=1e-9)
    chunked = zero_sum_batch(As, tol=1e-9, options=SMALL_CHUNKS)
    _check_batch(As, chunked, 1e-9)
    assert chunked.converged.all()
    # The iteration counts differ between games, so the straggler pass had work to do.
    assert len(set(chunked.iterations.tolist())) > 1
    np.testing.assert_array_equal(chunked.iterations, one_chunk.iterations[::-1])
    np.testing.assert_allclose(chunked.x, one_chunk.x[::-1], rtol=0, atol=1e-12)
    np.testing.assert_allclose(chunked.y, one_chunk.y[::-1], rtol=0, atol=1e-12)


@pytest.mark.parametrize("transpose", [False, True])
def test_batch_rectangular(transpose: bool) -> None:
    rng = np.random.default_rng(int(transpose))
    As = rng.standard_normal(SMALL)
    if transpose:
        As = np.swapaxes(As, 1, 2).copy()
    sol = zero_sum_batch(As, tol=1e-7)
    _check_batch(As, sol, 1e-7)
    assert sol.converged.all()
    for k in range(0, 50, 10):
        assert sol.value[k] == pytest.approx(oracle_value(As[k]), abs=1e-7)


def test_batch_degenerate_games() -> None:
    rng = np.random.default_rng(3)
    dominated = rng.standard_normal((6, 3))
    dominated[5] = dominated[0] + 0.5
    thin = np.full((6, 3), 5.0)
    thin[:, 1] = rng.standard_normal(6)  # columns 0, 2 tie; column 1 only matters via the rows
    degenerate = [
        np.zeros((6, 3)),
        np.full((6, 3), -7.0),
        rng.integers(-1, 2, size=(6, 3)).astype(float),
        dominated,
        np.eye(6, 3),
        np.triu(np.ones((6, 3))),  # pure saddle point
        1e3 * rng.standard_normal((6, 3)),
        thin,
    ]
    As = np.concatenate([np.stack(degenerate), rng.standard_normal((50 - len(degenerate), 6, 3))])
    sol = zero_sum_batch(As, tol=1e-6)
    _check_batch(As, sol, 1e-6)
    assert sol.converged.all()
    for k in range(len(degenerate)):
        scale = max(1.0, np.abs(As[k]).max())
        assert sol.value[k] == pytest.approx(oracle_value(As[k]), abs=1e-6 * scale)
    assert sol.value[1] == pytest.approx(-7.0, abs=1e-12)
    assert sol.iterations[1] == 0  # constant game: certified at the starting point


@pytest.mark.parametrize("shape", [(1, 4), (4, 1)])
def test_batch_single_row_or_column(shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(9)
    As = rng.standard_normal((8, *shape))
    sol = zero_sum_batch(As, tol=1e-8)
    _check_batch(As, sol, 1e-8)
    assert sol.converged.all()
    # One row: the attacker picks the largest entry; one column: the defender the smallest.
    expected = As.max(axis=2)[:, 0] if shape[0] == 1 else As.min(axis=1)[:, 0]
    np.testing.assert_allclose(sol.value, expected, atol=1e-8)


def test_batch_finishes_unconverged_games_exactly() -> None:
    """Games the IPM does not certify (here: 3 iterations for tol 1e-9) are finished by the
    exact LP and flagged; every returned game meets tol."""
    rng = np.random.default_rng(11)
    As = rng.standard_normal(SMALL)
    sol = zero_sum_batch(As, tol=1e-9, max_iter=3)
    _check_batch(As, sol, 1e-9)
    assert sol.converged.all() and (sol.status == "certified").all()
    assert sol.finished_exactly.all() and np.all(sol.iterations == 3)
    for k in range(0, 50, 7):
        assert sol.value[k] == pytest.approx(oracle_value(As[k]), abs=1e-9)
    quick = zero_sum_batch(As, tol=1e-9)
    assert not quick.finished_exactly.any()  # with enough iterations the IPM does it alone


def test_batch_finishes_a_stalled_game_exactly() -> None:
    """Game 4376 of seed 9 stalls (non-finite step) at iteration 7 with exploitability 1.6e-6
    (in its batch of 10,000 it used to come back converged=False, unsolved). The exact LP now
    finishes it; with fixed-size chunks the game stalls the same way alone."""
    A = np.random.default_rng(9).standard_normal((10_000, 20, 20))[4376:4377]
    sol = zero_sum_batch(A, tol=1e-6)
    assert sol.finished_exactly.tolist() == [True] and sol.status.tolist() == ["certified"]
    assert sol.iterations[0] < 60  # stopped by the stall, not by max_iter
    assert exact_exploitability(A[0], sol.x[0], sol.y[0]) <= Fraction(1e-6)
    assert sol.value[0] == pytest.approx(oracle_value(A[0]), abs=1e-9)


def test_batch_never_claims_an_unreached_tol_at_large_payoffs() -> None:
    """At payoffs of 1e12, float64 round-off hid a gap: game 204 of this batch was reported
    converged with exploitability 0.0 while its exact exploitability is 1.39e-6 > tol."""
    As = np.random.default_rng(7).standard_normal((400, 6, 4))[200:210] * 1e12
    with pytest.raises(SolverError, match=r"cannot be certified to tol=1e-06.*strict=False") as e:
        zero_sum_batch(As, tol=1e-6)
    sol = e.value.solution
    assert sol.status.tolist().count("certified") == int(sol.converged.sum()) >= 1
    for k in range(len(As)):
        exact = exact_exploitability(As[k], sol.x[k], sol.y[k])
        assert exact <= Fraction(float(sol.exploitability[k]))  # the bound holds exactly
        if sol.converged[k]:
            assert exact <= Fraction(1e-6)
    relaxed = zero_sum_batch(As, tol=1e-6, strict=False)
    np.testing.assert_array_equal(relaxed.status, sol.status)
    assert (relaxed.status[~relaxed.converged] == "gap_above_tol").all()
    # A tol above the float64 resolution of these payoffs is met by every game.
    assert zero_sum_batch(As, tol=1e-2).converged.all()


def test_batch_compiles_once_per_shape_whatever_the_batch_size(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from minimax.finite._ipm import _run_chunk

    rng = np.random.default_rng(5)
    zero_sum_batch(rng.standard_normal(SMALL), options=SMALL_CHUNKS)
    compiled = _run_chunk._cache_size()
    with jax.log_compiles(True), caplog.at_level(logging.WARNING):
        # New values, batch sizes (one chunk, several, padded), tol and max_iter, and the
        # transposed shape (transposed on the host): nothing at all is compiled.
        for size in (7, 33, 1):
            zero_sum_batch(rng.standard_normal((size, 6, 3)), options=SMALL_CHUNKS)
        zero_sum_batch(rng.standard_normal(SMALL), tol=1e-4, max_iter=7, options=SMALL_CHUNKS)
        zero_sum_batch(np.swapaxes(rng.standard_normal((20, 6, 3)), 1, 2), options=SMALL_CHUNKS)
    assert _run_chunk._cache_size() == compiled
    assert not [r for r in caplog.records if "ompil" in r.getMessage()]


@pytest.mark.parametrize(
    ("bad", "kwargs", "match"),
    [
        (np.ones((3, 3)), {}, r"3-D .*A\[None\]"),
        (np.ones((2, 0, 3)), {}, "at least one entry"),
        (np.full((2, 2, 2), np.nan), {}, r"As\[0, 0, 0\] = nan"),
        (np.ones((2, 2, 2)), {"tol": 0.0}, "tol must be"),
        (np.ones((2, 2, 2)), {"max_iter": 0}, "max_iter must be"),
        (np.ones((2, 2, 2)) * 1j, {}, "As must be real"),
        (np.ones((2, 2, 2)), {"options": {"step": 1}}, r"unknown IPM option\(s\) \['step'\]"),
        (np.ones((2, 2, 2)), {"options": IPMOptions(step_to_boundary=1.5)}, "step_to_boundary"),
    ],
)
def test_batch_bad_input(bad: np.ndarray, kwargs: dict, match: str) -> None:
    with pytest.raises(GameSpecError, match=match):
        zero_sum_batch(bad, **kwargs)


@pytest.mark.slow
def test_batch_10000_random_20x20() -> None:
    rng = np.random.default_rng(0)
    As = rng.standard_normal((10_000, 20, 20))
    sol = zero_sum_batch(As, tol=1e-6)
    _check_batch(As, sol, 1e-6)
    assert sol.converged.all()


# --- loading ----------------------------------------------------------------------------------


def test_load_matrix_csv_and_npy(tmp_path) -> None:
    A = np.array([[0.0, 1.5, -2.0], [3.0, -0.25, 1e-3]])
    csv = tmp_path / "game.csv"
    csv.write_text("# loss matrix\n" + "\n".join(",".join(str(float(v)) for v in row) for row in A))
    npy = tmp_path / "game.npy"
    np.save(npy, A)
    for path in (csv, str(npy)):
        B = load_matrix(path)
        assert B.dtype == np.float64
        np.testing.assert_array_equal(B, A)
    row = tmp_path / "row.csv"
    row.write_text("1,2,3\n")
    assert load_matrix(row).shape == (1, 3)


@pytest.mark.parametrize(
    ("name", "content", "match"),
    [
        ("game.txt", "1,2\n", "must end in"),
        ("ragged.csv", "1,2,3\n4,5\n", "could not read"),
        ("words.csv", "a,b\n1,2\n", "could not read"),
        ("nan.csv", "1,nan\n2,3\n", r"= nan"),
    ],
)
def test_load_matrix_bad_files(tmp_path, name: str, content: str, match: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(GameSpecError, match=match):
        load_matrix(path)


@pytest.mark.parametrize("path", [None, 3, ["a.csv"]])
def test_load_matrix_needs_a_path(path: object) -> None:
    with pytest.raises(GameSpecError, match=r"path must be a file name \(str or os.PathLike\)"):
        load_matrix(path)


def test_load_matrix_refuses_complex_npy(tmp_path) -> None:
    np.save(tmp_path / "c.npy", np.array([[1.0, 2.0 + 0.5j]]))
    with pytest.raises(GameSpecError, match=r"must be real.*\[0, 1\] = \(2\+0\.5j\)"):
        load_matrix(tmp_path / "c.npy")


def test_load_matrix_missing_and_wrong_rank(tmp_path) -> None:
    with pytest.raises(GameSpecError, match="does not exist"):
        load_matrix(tmp_path / "absent.csv")
    np.save(tmp_path / "cube.npy", np.ones((2, 2, 2)))
    with pytest.raises(GameSpecError, match="2-D"):
        load_matrix(tmp_path / "cube.npy")
