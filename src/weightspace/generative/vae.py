"""CartPoleGen: a variational autoencoder over flattened network weights (paper 004, section 3.4).

Encoder and decoder are ELU networks with skip connections by concatenation: every hidden layer
and the output layer see the concatenation of the layer input and all earlier hidden layers
(DenseNet-style). The latent is a diagonal Gaussian (32 dimensions by default), the prior
N(0, I), the likelihood a Gaussian with fixed standard deviation ``likelihood_std``, so the
reconstruction term is a scaled squared error (the paper's "minimizing the negative
log-likelihood of a Gaussian model is equivalent to minimizing the mean squared error").

Weights are standardised per coordinate with the training set's mean and standard deviation
(stored in the model), so one likelihood scale fits layers of different magnitudes.

The conditional variant (``num_classes > 0``, Sohn et al. 2015) feeds a one-hot class (the
survival-time group) to the encoder and to the decoder. With ``class_specific`` (the default) the
decoder also has one output layer per class on its shared hidden layers, and each class gets its
own prior for sampling, p(z | g) = N(mu_g, diag sigma_g^2), fitted after training to the class's
aggregate posterior (mean of the posterior means; mean posterior variance plus the spread of the
means), as in ex-post density estimation (Ghosh et al. 2020). Sampling with class g draws z from
p(z | g) and decodes it with g's head. Generated networks are the decoder means.

Why: the weights themselves tell the group, so the encoder puts the group into z, and a decoder
that only reads the one-hot class among its inputs learns to ignore it. Sampling z from N(0, I)
then gives the same networks for every class: on a 2,048-network CartPole zoo the plain CVAE's
samples survive 78/75/78/82 steps for the four groups. The heads carry each class's typical
network (30/57/85/106 there, near four separate models' 25/48/81/103); the class prior puts z in
the class's region, which is what matters where the class is a shift in weight space (the test
``test_conditional_vae_samples_follow_their_class``). ``class_specific = False`` is the plain CVAE.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn
from tqdm.auto import tqdm

from .. import storage
from ..errors import ConfigError, WeightspaceError
from ..networks.architectures import architecture_from_spec
from ..networks.weights import Population, WeightSpec
from ..threads import intra_op_threads

MODEL_FILE = "model.safetensors"
CONFIG_FILE = "vae.json"
#: Bounds of the posterior log-variance: without them a posterior scale can run off (exp overflows)
#: and training turns to NaN within 20 epochs (measured on a 2,048-network CartPole zoo).
LOG_VAR_MIN, LOG_VAR_MAX = -10.0, 4.0


@dataclass(frozen=True)
class VAEConfig:
    """The model. Paper 004: latent 32, ELU, concatenating skip connections."""

    input_size: int = field(default=212, metadata={"help": "Weights per network."})
    latent_size: int = field(default=32, metadata={"help": "Latent dimensions."})
    hidden_size: int = field(default=256, metadata={"help": "Units per hidden layer."})
    hidden_layers: int = field(default=2, metadata={"help": "Hidden layers of the encoder and of the decoder."})
    num_classes: int = field(default=0, metadata={"help": "> 0: a conditional VAE on a one-hot class."})
    likelihood_std: float = field(
        default=0.3, metadata={"help": "Standard deviation of the Gaussian likelihood, in standardised weight units."}
    )
    standardize: bool = field(
        default=True, metadata={"help": "Standardise each weight with the training set's mean and std."}
    )
    class_specific: bool = field(
        default=True,
        metadata={
            "help": "Conditional only: one decoder output layer and one sampling prior per class "
            "(False: the class is only an input, and samples come from N(0, I))."
        },
    )

    def __post_init__(self):
        problems = [
            f"{name} must be >= 1 (got {getattr(self, name)})"
            for name in ("input_size", "latent_size", "hidden_size")
            if getattr(self, name) < 1
        ]
        if self.hidden_layers < 0 or self.num_classes < 0:
            problems.append("hidden_layers and num_classes must be >= 0")
        if not self.likelihood_std > 0:
            problems.append(f"likelihood_std must be > 0 (got {self.likelihood_std})")
        if problems:
            raise ConfigError("; ".join(problems))


@dataclass(frozen=True)
class VAETraining:
    """Paper 004: Adam, 20 epochs, batch size 10."""

    epochs: int = field(default=20, metadata={"help": "Passes over the training networks."})
    batch_size: int = field(default=10, metadata={"help": "Networks per Adam step."})
    learning_rate: float = field(default=1e-3, metadata={"help": "Adam learning rate."})
    seed: int = field(default=0, metadata={"help": "Initialisation, batch order and the reparameterisation noise."})

    def __post_init__(self):
        if self.epochs < 1 or self.batch_size < 1 or not self.learning_rate > 0:
            raise ConfigError(f"epochs and batch_size must be >= 1 and learning_rate > 0 (got {self})")


class DenseSkipMLP(nn.Module):
    """ELU layers where each layer's input is the concatenation of the block input and all
    earlier hidden outputs; the final linear layer sees all of them too."""

    def __init__(self, input_size: int, hidden_size: int, hidden_layers: int, output_size: int):
        super().__init__()
        self.hidden = nn.ModuleList(nn.Linear(input_size + i * hidden_size, hidden_size) for i in range(hidden_layers))
        self.out = nn.Linear(input_size + hidden_layers * hidden_size, output_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = x
        for layer in self.hidden:
            features = torch.cat([features, nn.functional.elu(layer(features))], dim=-1)
        return self.out(features)


class WeightVAE(nn.Module):
    """CartPoleGen and its conditional variant (see module docstring)."""

    def __init__(self, config: VAEConfig, spec: WeightSpec | None = None):
        super().__init__()
        if spec is not None and spec.num_parameters != config.input_size:
            raise ConfigError(
                f"input_size {config.input_size} does not match the {spec.num_parameters} "
                "parameters of the weight layout"
            )
        self.config = config
        self.spec = spec
        self.info: dict = {}  # what it was trained on (filled by ``load``)
        c = config
        self.encoder = DenseSkipMLP(c.input_size + c.num_classes, c.hidden_size, c.hidden_layers, 2 * c.latent_size)
        self.heads = c.num_classes if c.num_classes and c.class_specific else 1
        if self.heads > 1:  # the sampling prior of each class (N(0, I) until training fits it)
            self.register_buffer("prior_mean", torch.zeros(c.num_classes, c.latent_size))
            self.register_buffer("prior_log_var", torch.zeros(c.num_classes, c.latent_size))
        self.decoder = DenseSkipMLP(
            c.latent_size + c.num_classes, c.hidden_size, c.hidden_layers, c.input_size * self.heads
        )
        self.register_buffer("weight_mean", torch.zeros(c.input_size))
        self.register_buffer("weight_std", torch.ones(c.input_size))

    @property
    def conditional(self) -> bool:
        return self.config.num_classes > 0

    def _labels(self, labels, count: int, device) -> torch.Tensor | None:
        """``labels`` checked once per call of a public method: None for an unconditional model,
        else a (count,) long tensor of classes."""
        if not self.conditional:
            return None
        if labels is None:
            raise WeightspaceError(f"this VAE is conditional: give a class in 0..{self.config.num_classes - 1}")
        labels = torch.as_tensor(labels, device=device).long().expand(count)
        if labels.numel() and (labels.min() < 0 or labels.max() >= self.config.num_classes):
            raise WeightspaceError(f"classes must lie in 0..{self.config.num_classes - 1}")
        return labels

    def _with_class(self, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        if labels is None:
            return x
        return torch.cat([x, nn.functional.one_hot(labels, self.config.num_classes).to(x.dtype)], dim=-1)

    def _encoded(self, flat: torch.Tensor, labels: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_var = self.encoder(self._with_class(self.standardize(flat), labels)).chunk(2, dim=-1)
        return mean, log_var.clamp(LOG_VAR_MIN, LOG_VAR_MAX)

    def _decoded(self, z: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """The decoder's output in standardised units, from the class's head where there is one per class."""
        out = self.decoder(self._with_class(z, labels))
        if self.heads == 1:
            return out
        return out.view(len(z), self.heads, -1)[torch.arange(len(z), device=z.device), labels]

    # Standardisation ---------------------------------------------------------------------
    def fit_standardization(self, flat: torch.Tensor) -> None:
        if not self.config.standardize:
            return
        with torch.no_grad():
            self.weight_mean.copy_(flat.mean(0))
            self.weight_std.copy_(flat.std(0).clamp(min=1e-6) if len(flat) > 1 else torch.ones_like(flat[0]))

    def standardize(self, flat: torch.Tensor) -> torch.Tensor:
        return (flat - self.weight_mean) / self.weight_std

    def destandardize(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight_std + self.weight_mean

    # The model ---------------------------------------------------------------------------
    def encode(self, flat: torch.Tensor, labels=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior mean and log-variance of flattened weights (N, P): two (N, latent) tensors."""
        return self._encoded(flat, self._labels(labels, len(flat), flat.device))

    def decode(self, z: torch.Tensor, labels=None) -> torch.Tensor:
        """Flattened weights (the likelihood's mean) for latents z (N, latent): (N, P)."""
        return self.destandardize(self._decoded(z, self._labels(labels, len(z), z.device)))

    def loss(
        self, flat: torch.Tensor, labels=None, generator: torch.Generator | None = None
    ) -> dict[str, torch.Tensor]:
        """Negative ELBO per network (equation 3 with one noise sample), and its two terms: (N,) each."""
        labels = self._labels(labels, len(flat), flat.device)
        mean, log_var = self._encoded(flat, labels)
        noise = torch.randn(mean.shape, generator=generator, device=mean.device)
        z = mean + torch.exp(0.5 * log_var) * noise
        reconstruction = self._decoded(z, labels)
        std = self.config.likelihood_std
        nll = (0.5 * ((reconstruction - self.standardize(flat)) / std) ** 2).sum(-1) + self.config.input_size * (
            math.log(std) + 0.5 * math.log(2 * math.pi)
        )
        kl = 0.5 * (mean**2 + log_var.exp() - 1 - log_var).sum(-1)
        return {"loss": nll + kl, "reconstruction": nll, "kl": kl}

    @torch.no_grad()
    def sample(self, count: int, labels=None, generator: torch.Generator | None = None) -> torch.Tensor:
        """``count`` new weight vectors from the prior (of class ``labels`` if conditional): (count, P)."""
        device = self.weight_mean.device
        z = torch.randn(count, self.config.latent_size, generator=generator, device=device)
        labels = self._labels(labels, count, device)
        if self.heads > 1:
            z = self.prior_mean[labels] + torch.exp(0.5 * self.prior_log_var[labels]) * z
        return self.destandardize(self._decoded(z, labels))

    def population(self, flat: torch.Tensor) -> Population:
        if self.spec is None:
            raise WeightspaceError("this VAE has no weight layout; build it with a spec")
        return Population.unflatten(self.spec, flat.detach())

    # Files -------------------------------------------------------------------------------
    def save(self, directory, info: dict | None = None) -> Path:
        """Write ``model.safetensors`` and ``vae.json`` (config, weight layout, ``info``) to ``directory``."""
        directory = Path(directory)
        storage.write_tensors(directory / MODEL_FILE, dict(self.state_dict()))
        storage.write_json(
            directory / CONFIG_FILE,
            {
                "model": "weightspace.generative.WeightVAE",
                "config": dataclasses.asdict(self.config),
                "architecture": self.spec.to_json() if self.spec is not None else None,
                "info": info or {},
            },
        )
        return directory

    @classmethod
    def load(cls, directory, device="cpu") -> WeightVAE:
        directory = Path(directory)
        if not (directory / CONFIG_FILE).exists() or not (directory / MODEL_FILE).exists():
            raise WeightspaceError(
                f"{directory} is not a saved VAE (it needs {CONFIG_FILE} and {MODEL_FILE}; "
                "write one with `weightspace generative train`)"
            )
        try:
            meta = json.loads((directory / CONFIG_FILE).read_text())
            # saved before the class heads existed: the plain CVAE
            config = VAEConfig(**{"class_specific": False, **meta["config"]})
            spec = architecture_from_spec(meta["architecture"]).spec if meta.get("architecture") else None
        except (json.JSONDecodeError, KeyError, TypeError) as error:
            raise WeightspaceError(f"{directory / CONFIG_FILE} is not a readable VAE description ({error})") from None
        model = cls(config, spec)
        model.load_state_dict(load_file(directory / MODEL_FILE))
        model.info = meta.get("info", {})
        return model.to(device).eval()


def train_vae(
    model: WeightVAE,
    flat: torch.Tensor,
    labels: torch.Tensor | None = None,
    training: VAETraining = VAETraining(),
    progress: bool = False,
    threads: int | None = 1,
) -> list[float]:
    """Fit ``model`` to flattened weights ``flat`` (N, P) (with classes ``labels`` (N,) if
    conditional) with Adam; sets the standardisation from ``flat``. Returns the mean loss of each
    epoch. Runs with ``threads`` torch threads (small batches; see :mod:`weightspace.threads`)."""
    with intra_op_threads(threads if flat.device.type == "cpu" else None):
        return _train(model, flat, labels, training, progress)


def _train(model, flat, labels, training, progress) -> list[float]:
    if flat.ndim != 2 or flat.shape[1] != model.config.input_size:
        raise WeightspaceError(f"expected weights of shape (N, {model.config.input_size}), got {tuple(flat.shape)}")
    if len(flat) == 0:
        raise WeightspaceError("no networks to train on")
    if model.conditional and (labels is None or len(labels) != len(flat)):
        raise WeightspaceError("a conditional VAE needs one class per network")
    generator = torch.Generator(device=flat.device).manual_seed(training.seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(training.seed)  # parameter initialisation
        for module in model.modules():
            if isinstance(module, nn.Linear):
                module.reset_parameters()
    model.fit_standardization(flat)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=training.learning_rate)
    history = []
    bar = tqdm(range(training.epochs), desc="VAE", unit="epoch", disable=not progress, dynamic_ncols=True)
    for _ in bar:
        order = torch.randperm(len(flat), generator=generator, device=flat.device)
        total = 0.0
        for start in range(0, len(flat), training.batch_size):
            batch = order[start : start + training.batch_size]
            losses = model.loss(flat[batch], None if labels is None else labels[batch], generator)
            optimizer.zero_grad()
            losses["loss"].mean().backward()
            optimizer.step()
            total += float(losses["loss"].detach().sum())
        history.append(total / len(flat))
        bar.set_postfix(loss=f"{history[-1]:.2f}")
    model.eval()
    if model.heads > 1:
        _fit_class_prior(model, flat, labels)
    return history


@torch.no_grad()
def _fit_class_prior(model: WeightVAE, flat: torch.Tensor, labels: torch.Tensor, chunk: int = 65536) -> None:
    """Set each class's sampling prior to the moments of its aggregate posterior; a class without
    networks keeps N(0, I)."""
    labels = labels.to(flat.device).long()
    parts = [model.encode(flat[i : i + chunk], labels[i : i + chunk]) for i in range(0, len(flat), chunk)]
    mean, variance = torch.cat([m for m, _ in parts]), torch.cat([v for _, v in parts]).exp()
    for c in range(model.config.num_classes):
        members = labels == c
        if members.any():
            centre = mean[members].mean(0)
            model.prior_mean[c] = centre
            model.prior_log_var[c] = (variance[members] + (mean[members] - centre) ** 2).mean(0).clamp(min=1e-6).log()
