"""Probing encoders: shapes, inherited permutation invariance, batched vs per-network evaluation."""

from functools import partial

import pytest
import torch

from probing_reference import REFERENCE
from weightspace.encoders.base import TaskIO
from weightspace.encoders.probing import InteractiveProbing, NonInteractiveProbing
from weightspace.networks import INCORRECT_VARIANTS, LSTM, permute, random_permutations

#: the interactive reader without the authors' residual connections (E_R adding each layer's input
#: to its output, the default)
PLAIN = partial(InteractiveProbing, reader_residual=False)
RESIDUAL = NonInteractiveProbing  # residual by default, as the authors' reader
SINGLE_LSTM = partial(NonInteractiveProbing, reader_residual=False)
ENCODERS = [NonInteractiveProbing, SINGLE_LSTM, InteractiveProbing, PLAIN]
# small encoder and subjects so the suite stays fast; default sizes are checked in test_parameter_counts
SMALL = dict(probes=3, probe_length=7, reader_hidden=24, reader_layers=2, mlp_hidden=16)
LANGUAGE = (LSTM(6, 8, 2, 6), TaskIO("categorical", 6, "categorical", 6, 22))
DIGITS = (LSTM(4, 8, 2, 10), TaskIO("continuous", 4, "categorical", 10, 51))


def make(cls, setup=LANGUAGE, **kwargs):
    architecture, task = setup
    return cls(architecture, task, **{**SMALL, **kwargs}), architecture


def relative(a, b):
    return ((a - b).norm() / b.norm()).item()


def reference_encoder(encoder):
    cls = REFERENCE[type(encoder)]
    reference = cls(encoder.architecture, encoder.task, **SMALL)
    reference.load_state_dict(encoder.state_dict())
    return reference


# ---- shapes and probe spaces -------------------------------------------------------------------
@pytest.mark.parametrize("cls", ENCODERS)
@pytest.mark.parametrize("setup", [LANGUAGE, DIGITS], ids=["language", "digits"])
def test_embedding_shape(cls, setup):
    encoder, architecture = make(cls, setup, embedding_size=16)
    z = encoder(architecture.init(range(5)))
    assert z.shape == (5, 16) and torch.isfinite(z).all()
    assert encoder.permutation_invariant


def test_probe_spaces():
    categorical, _ = make(NonInteractiveProbing, LANGUAGE)
    probes = categorical.probe_inputs()
    assert probes.shape == (3, 7, 6)
    assert (probes >= 0).all() and torch.allclose(probes.sum(-1), torch.ones(3, 7))
    continuous, _ = make(NonInteractiveProbing, DIGITS)
    with torch.no_grad():
        continuous.probe_generator[-1].bias.fill_(50.0)  # saturate: probes reach the range's edge
    probes = continuous.probe_inputs()
    assert probes.shape == (3, 7, 4) and probes.min() >= -1 and probes.max() <= 2
    assert torch.allclose(probes, torch.full_like(probes, 2.0))
    unbounded, _ = make(NonInteractiveProbing, DIGITS, continuous_range=None)
    with torch.no_grad():
        unbounded.probe_generator[-1].bias.fill_(50.0)
    assert unbounded.probe_inputs().min() > 40


def test_rejects_mismatched_subjects():
    encoder, _ = make(NonInteractiveProbing)
    with pytest.raises(ValueError):
        encoder(LSTM(6, 10, 2, 6).init(range(2)))
    with pytest.raises(ValueError):
        make(InteractiveProbing)[0].interrogate(LSTM(6, 10, 2, 6).init(range(2)))
    with pytest.raises(ValueError):
        NonInteractiveProbing(LSTM(5, 8, 2, 6), LANGUAGE[1])


# ---- symmetry: inherited from the subjects -----------------------------------------------------
@pytest.mark.parametrize("cls", ENCODERS)
def test_invariant_to_correct_permutations(cls):
    encoder, architecture = make(cls)
    weights = architecture.init(range(6))
    generator = torch.Generator().manual_seed(1)
    permuted = permute(weights, random_permutations(weights.spec, 6, generator))
    assert relative(permuted.flatten(), weights.flatten()) > 0.1  # the weights did move
    torch.testing.assert_close(encoder(permuted), encoder(weights), atol=1e-5, rtol=0)


@pytest.mark.parametrize("cls", ENCODERS)
def test_incorrect_permutations_change_embedding(cls):
    encoder, architecture = make(cls)
    weights = architecture.init(range(4))
    perms = random_permutations(weights.spec, 4, torch.Generator().manual_seed(2))
    z = encoder(weights)
    for variant in INCORRECT_VARIANTS:
        change = relative(encoder(permute(weights, perms, variant)), z)
        assert change > 1e-4, f"{variant}: relative change {change:.2e}"


# ---- non-interactive: one batched pass equals per-network evaluation ---------------------------
def test_the_residual_non_interactive_reader_adds_each_layer_s_input_to_its_output():
    encoder, architecture = make(RESIDUAL)
    weights = architecture.init(range(3))
    x = encoder.reader_inputs(encoder.run_subjects(weights, encoder.probe_inputs()))
    for layer in encoder.reader:
        x = layer(x)[0] + x
    torch.testing.assert_close(encoder(weights), encoder.head(x[:, -1]))
    plain = SINGLE_LSTM(architecture, encoder.task, **SMALL)
    assert encoder.num_parameters == plain.num_parameters  # the same LSTM weights, stacked one layer each


@pytest.mark.parametrize("cls", [NonInteractiveProbing, SINGLE_LSTM])
def test_non_interactive_batched_equals_per_network(cls):
    encoder, architecture = make(cls)
    weights = architecture.init(range(5))
    z = encoder(weights)
    for k in range(5):
        torch.testing.assert_close(z[k : k + 1], encoder(weights.select(k)), atol=1e-5, rtol=0)


def test_non_interactive_matches_torch_reference():
    """Embeddings and gradients (into E_I through the fused subject kernel) equal nn.LSTM's."""
    encoder, architecture = make(NonInteractiveProbing)
    reference = reference_encoder(encoder)
    weights = architecture.init(range(4))
    # the reference really is nn.LSTM + nn.Linear, network k as architecture.to_torch gives it
    probes = encoder.probe_inputs().detach()
    torch.testing.assert_close(reference.run_subjects(weights, probes)[2], architecture.to_torch(weights, 2)(probes)[0])
    cotangent = torch.randn(4, encoder.embedding_size)
    z, z_ref = encoder(weights), reference(weights)
    torch.testing.assert_close(z, z_ref, atol=1e-5, rtol=0)
    (z * cotangent).sum().backward()
    (z_ref * cotangent).sum().backward()
    for (name, p), p_ref in zip(encoder.named_parameters(), reference.parameters()):
        assert p.grad is not None and p.grad.abs().sum() > 0, name
        torch.testing.assert_close(p.grad, p_ref.grad, atol=1e-5, rtol=1e-4, msg=name)


# ---- interactive --------------------------------------------------------------------------------
def test_interactive_batched_equals_per_network_and_reference():
    encoder, architecture = make(InteractiveProbing, DIGITS)
    weights = architecture.init(range(3))
    z = encoder(weights)
    for k in range(3):
        torch.testing.assert_close(z[k : k + 1], encoder(weights.select(k)), atol=1e-5, rtol=0)
    torch.testing.assert_close(z, reference_encoder(encoder)(weights), atol=1e-5, rtol=0)


def test_interactive_gradients_reach_probe_generator_through_subjects():
    encoder, architecture = make(InteractiveProbing)
    weights = architecture.init(range(3)).map(lambda t: t.requires_grad_())
    z, probes = encoder.interrogate(weights)
    assert probes.shape == (3, 3, 7, 6)
    z.square().sum().backward()
    # E_I reaches the embedding only through the subjects' outputs to its probes
    for name, p in encoder.probe_generator.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert encoder.initial_query.grad.abs().sum() > 0
    for name, tensor in weights.items():
        assert tensor.grad is not None and tensor.grad.abs().sum() > 0, name


def test_interactive_probes_depend_on_subject():
    encoder, architecture = make(InteractiveProbing)
    weights = architecture.init([3, 11])
    with torch.no_grad():
        _, probes = encoder.interrogate(weights)
    # step 1 is the same learned query for everyone; later steps react to the subject's answers
    torch.testing.assert_close(probes[0, :, 0], probes[1, :, 0])
    # (random untrained encoders give near-uniform probes, so the difference is small but far
    # above rounding, which is what a permuted copy of the same subject shows)
    between_subjects = relative(probes[0, :, 1:], probes[1, :, 1:])
    permuted = permute(weights, random_permutations(weights.spec, 2, torch.Generator().manual_seed(0)))
    with torch.no_grad():
        same_subject = relative(encoder.interrogate(permuted)[1], probes)
    assert between_subjects > 1e-5, between_subjects
    assert between_subjects > 100 * same_subject, (between_subjects, same_subject)


def test_a_residual_reader_lets_the_probes_depend_on_the_subject_from_the_start():
    """With E_R's cells at their small initial outputs, the subject's answers reach the next probe
    mostly past them: the probes of two subjects differ far more than through the cells alone."""
    torch.manual_seed(0)
    residual, architecture = make(InteractiveProbing)
    plain = PLAIN(architecture, residual.task, **SMALL)
    plain.load_state_dict(residual.state_dict())  # the same parameters: only the reader's wiring differs
    weights = architecture.init([3, 11])
    with torch.no_grad():
        spread = {
            name: relative(probes[0, :, 1:], probes[1, :, 1:])
            for name, probes in (
                ("plain", plain.interrogate(weights)[1]),
                ("residual", residual.interrogate(weights)[1]),
            )
        }
    assert spread["residual"] > 10 * spread["plain"], spread


# ---- default sizes --------------------------------------------------------------------------------
PAPER_LANGUAGE = (LSTM(6, 32, 2, 6), TaskIO("categorical", 6, "categorical", 6, 22))
PAPER_DIGITS = (LSTM(16, 32, 2, 10), TaskIO("continuous", 16, "categorical", 10, 51))


@pytest.mark.parametrize(
    "cls, setup, paper",
    [  # tables 9 and 10
        (NonInteractiveProbing, PAPER_LANGUAGE, 1_241_718),
        (NonInteractiveProbing, PAPER_DIGITS, 1_254_016),
        (InteractiveProbing, PAPER_LANGUAGE, 1_235_830),
        (InteractiveProbing, PAPER_DIGITS, 1_240_960),
    ],
)
def test_parameter_counts_near_paper(cls, setup, paper):
    architecture, task = setup
    encoder = cls(architecture, task)
    assert encoder.probe_length == task.probe_length and encoder.probes == 8
    assert abs(encoder.num_parameters - paper) / paper < 0.1, encoder.num_parameters
    z = encoder(architecture.init(range(2)))
    assert z.shape == (2, 16)
