"""The formal-language task family: sampling, exact membership, splits."""

import itertools
import re

import numpy as np
import torch

from weightspace.tasks import formal_languages as fl
from weightspace.tasks.formal_languages import language_splits

LETTERS = "abcd"


def encode(string: str) -> torch.Tensor:
    ids = [fl.BOS] + [LETTERS.index(ch) for ch in string]
    ids += [fl.EOS] * (fl.SEQUENCE_LENGTH - len(ids))
    return torch.tensor(ids)


def reference_member(m, string: str) -> bool:
    match = re.fullmatch(r"(a*)(b*)(c*)(d*)", string)
    if not match:
        return False
    n, nb, nc, nd = (len(g) for g in match.groups())
    return (nb, nc, nd) == (n + m[0], n + m[1], n + m[2]) and n >= max(0, -min(m))


def test_vocabulary_matches_the_published_dataset():
    assert fl.VOCABULARY == {"a": 0, "b": 1, "c": 2, "d": 3, "BOS": 4, "EOS": 5}
    assert len(fl.all_languages()) == 216


def test_example_language():
    # L(1, -1, 2) = a^n b^(n+1) c^(n-1) d^(n+2), n >= 1. (The paper's own examples for this
    # language, e.g. "abddd", do not satisfy its definition; "abddd" is a non-member here.)
    params = torch.tensor([[1, -1, 2]])
    members = ["abbddd", "aabbbcdddd", "aaabbbbccddddd"]
    non_members = ["abddd", "", "abbdd", "abdbdd", "bddd"]
    tokens = torch.stack([encode(s) for s in members + non_members])[None]
    assert fl.is_member(params, tokens)[0].tolist() == [True] * 3 + [False] * 5


def test_membership_agrees_with_a_regex_on_all_short_strings():
    strings = ["".join(p) for n in range(0, 7) for p in itertools.product(LETTERS, repeat=n)]
    tokens = torch.stack([encode(s) for s in strings])
    for m in [(0, 0, 0), (1, -1, 2), (-3, 2, -1), (2, 2, 2), (-1, -1, -1)]:
        got = fl.is_member(torch.tensor([m]), tokens[None])[0]
        expected = torch.tensor([reference_member(m, s) for s in strings])
        assert torch.equal(got, expected), m
        assert expected.any() or min(m) < -1


def test_malformed_sequences_are_not_members():
    params = torch.tensor([[0, 0, 0]])
    ok = encode("abcd")
    no_eos = ok.clone()
    no_eos[1:] = 0
    bos_inside = ok.clone()
    bos_inside[3] = fl.BOS
    tokens = torch.stack([ok, no_eos, bos_inside])[None]
    assert fl.is_member(params, tokens)[0].tolist() == [True, False, False]


def test_sampled_training_strings_are_members_and_cover_n():
    params = torch.tensor(fl.all_languages())
    keys = np.arange(216)
    tokens = fl.sample_strings(params, keys, stream=1, count=64)
    assert tokens.shape == (216, 64, 42)
    assert fl.is_member(params, tokens).all()
    assert (tokens[..., 0] == fl.BOS).all() and (tokens[..., -1] == fl.EOS).all()
    n = (tokens == 0).sum(-1)
    assert n.max() == fl.N_UPPER - 1
    assert torch.equal(
        n.min(-1).values[params.min(-1).values >= 0],
        torch.zeros(int((params.min(-1).values >= 0).sum()), dtype=torch.long),
    )


def test_training_batch_is_teacher_forcing():
    params = torch.tensor([[1, 0, -1], [2, 2, 2]])
    x, y = fl.training_batch(params, [3, 4], step=5, batch_size=8)
    assert x.shape == (2, 8, 41, 6) and y.shape == (2, 8, 41)
    assert torch.equal(x[:, :, 1:].argmax(-1), y[:, :, :-1])


def test_splits_are_by_language_and_ood_is_the_smallest_m():
    splits = language_splits()
    ood = [m for m, s in splits.items() if s == "ood"]
    assert len(ood) == 25 and max(sum(map(abs, m)) for m in ood) == 2
    others = [m for m, s in splits.items() if s != "ood"]
    assert min(sum(map(abs, m)) for m in others) == 3
    counts = {s: list(splits.values()).count(s) for s in ("train", "val")}
    assert counts["val"] == round(0.15 * 191) and counts["train"] == 191 - counts["val"]
    assert splits == language_splits()  # deterministic


def test_model_sampling_is_batched_and_keyed_per_network():
    from weightspace.networks import LSTM

    arch = LSTM(6, 8, 1, 6)
    weights = arch.init([1, 2, 3])
    tokens, logprobs = fl.sample_from_model(arch, weights, [1, 2, 3], stream=9, count=20)
    alone, alone_lp = fl.sample_from_model(arch, weights.select([1]), [2], stream=9, count=20)
    assert torch.equal(tokens[1], alone[0])
    torch.testing.assert_close(logprobs[1], alone_lp[0], atol=1e-6, rtol=0)
    torch.testing.assert_close(logprobs.exp().sum(-1), torch.ones(3, 20, 41))


def test_languages_each_covers_every_language_once_per_216_runs():
    from weightspace.tasks import get_task

    task = get_task("formal-languages")
    plan = task.plan(task.config({"models": 432, "languages": "each", "seed": 3}))
    counts = plan["task_id"].value_counts()
    assert len(counts) == 216 and (counts == 2).all()
    assert plan.equals(task.plan(task.config({"models": 432, "languages": "each", "seed": 3})))
    uniform = task.plan(task.config({"models": 432}))
    assert uniform["task_id"].nunique() < 216  # independent draws miss some languages
