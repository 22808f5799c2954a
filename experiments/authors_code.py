"""Train the authors' own paper-000 encoders on a weightspace zoo, in our units, at our budget.

Herrmann, Faccio & Schmidhuber, "Learning useful representations of recurrent neural network
weight matrices" (ICML 2024) published their code as the package
``rnn_weights_representation_learning``. This script imports that code from the path given with
``--authors-code`` (it is never copied into this repository) and trains their interactive
probing, non-interactive probing or layer-wise statistics encoder, with their emulator, their
loss and their training step, on exactly the data our pretraining
(:func:`weightspace.emulation.pretrain`) sees::

    .venv/bin/python experiments/authors_code.py \\
        --authors-code /path/to/rnn-weights-representation-learning \\
        --zoo results/probing-budget-5k/steps/zoo/digits/c8f858c88227d607/zoo \\
        --encoder interactive --steps 5000 --lr 1e-3 --seed 1 --out runs/authors-interactive

``--authors-code`` is the repository's root, its package folder, or a bare git repository (a
mirror without a work tree; its HEAD is exported to a temporary folder and imported from there).
``--zoo`` is a zoo directory (or an experiment's zoo step folder holding ``zoo/``). ``--config``
reads the ``[pretrain]`` and ``[encoder_options]`` of an experiment file (TOML, or the
``experiment.json`` a run writes), with our pipeline's defaults for what the file leaves out
(``PretrainConfig``, our encoders' own options; early stopping by its ``patience``); flags
override it. Without it the settings are those of the ``probing-budget-5k`` experiment: z of 16,
emulator hidden 128, 8 probes, statistics MLP 128 x 3, batch 32 networks x 4 rollouts, 20
validation rollouts, AdamW lr 1e-3, weight decay 0.01, clip 0.1, 5000 steps, evaluation every 250
steps, no early stopping (``--patience N`` stops after N evaluations without improvement).

Output (``--out``, which must be new or empty)::

    metrics.jsonl   one line per evaluation: step, train_loss, val_loss, seconds (our pretraining's
                    metrics.jsonl format, so ``weightspace.emulation.run_summary`` reads it), and
                    train_loss_theirs / val_loss_theirs in the training criterion's own units
    summary.json    best validation loss and its step, the loss before training, wall time,
                    seconds per training step, the settings (ours and their args), parameter
                    counts, the stubs used, and their commit where it can be read

Both files are written atomically (temporary file, then ``os.replace``).

What is shared with our pretraining: the zoo, its train/val split of networks, the batch of every
step (``batch_for_step``: the same networks, the same stored rollouts, so the same input
sequences and targets for a given ``--seed``), and the validation loss: the reverse KL from the
emulator's predicted distribution to the subject's stored one, averaged over the output classes,
the sequence steps, the first ``val_rollouts`` rollouts and the validation networks
(``emulation_loss(..., reduction="mean")``), computed here from their emulator's output.

What is theirs: ``define_encoder`` (with their configs from ``training_configs.py`` and the
defaults of their argument parser, sizes set to ours), ``EmulatorLSTM``,
``CombinedEncoderEmulator``, ``training_iteration`` (the loss), and their training step (AdamW on
encoder + emulator, loss averaged, encoder and emulator gradients clipped separately), copied
from their ``main`` loop because it is not a function there.

Their loss. Their configs train with ``criterion = "total_variation"`` (half the L1 distance of
the two distributions, summed over classes): not our quantity. Their ``kl_reverse`` criterion is
ours exactly (``F.kl_div(log p_subject, log p_emulator, log_target=True).mean(-1)`` = the mean
over classes of p_e (log p_e - log p_s), then the mean over steps, rollouts and networks);
``--criterion kl_reverse`` trains with it. Either way val_loss is ours, computed from the same
forward pass as their loss (the emulator output is recorded, not recomputed).

What their code needed:

* imports: their modules import each other as top-level modules, so their package folder goes on
  ``sys.path``. Modules we lack are replaced by stubs in ``sys.modules`` (never installed):
  ``wandb`` (logging), ``einops`` (neural-functional encoder only), ``torchvision`` and
  ``npy_append_array`` (dataset creation only); any of them that is installed is used as is. The
  stubs only have to survive the imports: calling anything in them raises.
* weights: our zoo stores ``nn.LSTM`` + ``nn.Linear`` state dicts (``rnn.*``, ``readout.*``); their
  flat parameter vector is the same tensors in ``RNNFast``'s order (``lstm.*``, ``linear.*``),
  which their ``RNNFunctionalizable`` reads under converted names. Before training the script
  checks that their functional model run on the stored rollout inputs reproduces the stored
  output distributions (as their ``check_rnn_model`` does).
* the task: their ``conditional_args`` derives sizes from a dataset name hard-wired to 28x28
  MNIST or to token languages; the same fields are set from the zoo here (continuous inputs as in
  their sequential-MNIST branch: no one-hot tokens, sigmoid probes; categorical inputs: softmax
  probes, with the one-hot inputs given as floats).

Where their setup necessarily differs from ours (the data is ours; the models are theirs):

* probes: their probe inputs are a sigmoid in [0, 1] (softmax for tokens); ours a sigmoid
  stretched to [-1, 2], the digits' pixel range plus the BOS (-1) and EOS (2) marker tiles, which
  their probes cannot reach. Their probe generator maps the reader state up to M codes
  (Linear 256 -> 128 M, ReLU) and decodes each with a shared MLP (128 -> 128 -> X); ours is one
  MLP (256 -> 128 -> M X).
* how probe outputs are read (E_O): theirs is Linear(M Y -> 256) + sigmoid on the subjects' raw
  logits; ours an MLP (M Y -> 128 -> 256) on their log-probabilities.
* the reader (E_R): theirs is a stack of LSTM cells with residual connections (output + input);
  it reads a learned BOS vector first and a learned EOS vector last (so L + 2 steps), and the
  first probe comes from its state after BOS. Ours reads o_1 .. o_L only; its first probe comes
  from a learned initial query. Their non-interactive encoder is the same module with the
  reader's feedback switched off (probes from L + 1 learned codes); ours runs the fixed probes in
  one batched pass.
* the head: theirs an MLP (256 -> 128 -> Z) on the reader's last output; ours a linear map.
* statistics: theirs are mean, variance and 5 quantiles of each whole tensor (10 tensors -> 70
  features); ours mean, standard deviation and 5 quantiles per gate block (34 blocks -> 238).
  Neither normalises its input. Their ``layerwise_statistics`` config names a 768 x 3 MLP, but
  their ``define_encoder`` builds the MLP from ``encoder_mlp_hidden_size`` x
  ``encoder_mlp_num_layers`` (128 x 1 by their defaults); here it gets our sizes (``hidden``,
  ``layers``).
* probe length: their rule (``probing_sequence_length = sequence_length + 1``) is the length of
  one subject input sequence (BOS + 49 tiles); ours is the task's, also one input sequence (here
  BOS + 16 tiles + EOS = 18).
* the emulator is the same design as ours (input and z projected to the emulator's width, z
  normalised and added at the first step, 2-layer LSTM, linear readout); only initialisation
  order differs (and we clamp the norm of z at 1e-8).
* batches: theirs are drawn by a shuffling DataLoader (each network once per epoch, its sequences
  drawn independently); here ours (networks drawn with replacement, one rollout subset per
  batch), so both codes see the same data.
* their loss (see above); their open-gate initialisations are off in their configs and stay off.

Keep runs short on a shared CPU: ``--threads 1``.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import inspect
import io
import json
import math
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import types
from pathlib import Path

import numpy as np
import torch

from weightspace import config as typed
from weightspace import storage
from weightspace.emulation.config import PretrainConfig
from weightspace.emulation.emulator import emulation_loss
from weightspace.emulation.run import RunData, batch_for_step
from weightspace.encoders import build_encoder, encoder_class
from weightspace.errors import WeightspaceError
from weightspace.experiments.config import read_toml
from weightspace.versions import weightspace_version
from weightspace.zoo.reader import Zoo

PACKAGE = "rnn_weights_representation_learning"
#: our encoder -> their encoder_type and the name of its config in training_configs.py
#: ("{probes}" is the number of parallel probe sequences: they have configs for 1, 2, 4 and 8)
ENCODERS = {
    "interactive": ("interactive", "interactive_{probes}"),
    "probing": ("noninteractive", "noninteractive_{probes}"),
    "statistics": ("layerwise_statistics", "layerwise_statistics"),
}
#: our encoder option -> their argument
OPTION_NAMES = {
    "interactive": {
        "probes": "num_parallel_probing_sequences",
        "probe_length": "probing_sequence_length",
        "reader_hidden": "encoder_core_hidden_size",
        "reader_layers": "encoder_core_num_layers",
        "mlp_hidden": "encoder_mlp_hidden_size",
    },
    "statistics": {"hidden": "encoder_mlp_hidden_size", "layers": "encoder_mlp_num_layers"},
}
OPTION_NAMES["probing"] = OPTION_NAMES["interactive"]
#: options of ours their code has no counterpart for (their choice is used, see the docstring)
NO_COUNTERPART = {"continuous_range"}
#: the probing-budget-5k experiment's settings (the defaults without --config)
DEFAULT_PRETRAIN = dict(
    steps=5000,
    batch_size=32,
    rollouts_per_network=4,
    val_rollouts=20,
    learning_rate=1e-3,
    weight_decay=0.01,
    gradient_clip=0.1,
    eval_every=250,
    embedding_size=16,
    emulator_hidden=128,
)
DEFAULT_OPTIONS = {"interactive": {"probes": 8}, "probing": {"probes": 8}, "statistics": {"hidden": 128}}
#: modules their package imports that we may lack; replaced by stubs if not installed
STUBBABLE = ("wandb", "einops", "torchvision", "npy_append_array", "matplotlib", "PIL", "sklearn")
CRITERIA = ("kl", "kl_reverse", "js_div", "total_variation", "ce", "cosine", "l2")


class BadInput(Exception):
    """A problem with the command line or its files: one line on stderr, exit code 2."""


# ---- their code -------------------------------------------------------------------------------
class _StubClass(type):
    """A stub's attributes: classes that can be subclassed and looked into, never called."""

    def __getattr__(cls, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _StubClass(f"{cls.__name__}.{name}", (), {})

    def __call__(cls, *args, **kwargs):
        raise RuntimeError(f"{cls.__name__} belongs to a stub module (not installed here)")


class _StubModule(types.ModuleType):
    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _StubClass(f"{self.__name__}.{name}", (), {})


def stub_missing_modules() -> list[str]:
    """Put a stub in ``sys.modules`` for each module their code imports and we lack."""
    stubbed = []
    for name in STUBBABLE:
        if name not in sys.modules and importlib.util.find_spec(name) is None:
            sys.modules[name] = _StubModule(name)
            stubbed.append(name)
    return stubbed


def _git(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-c", "safe.directory=*", *args], capture_output=True, check=False, **kwargs)


def locate_authors_code(path: Path) -> tuple[Path, str | None, Path | None]:
    """Their package folder, their commit (or None) and a temporary folder to delete afterwards
    (when ``path`` is a bare git repository whose HEAD was exported)."""
    if not path.exists():
        raise BadInput(f"--authors-code {path} does not exist")
    for package in (path / PACKAGE, path):
        if (package / "training_script.py").is_file():
            tracked = _git(["-C", str(package), "ls-files", "--error-unmatch", "training_script.py"])
            result = _git(["-C", str(package), "rev-parse", "HEAD"], text=True)
            commit = result.stdout.strip() if tracked.returncode == 0 and result.returncode == 0 else None
            return package, commit or None, None
    if (path / "HEAD").is_file() and (path / "objects").is_dir():  # a bare repository (a mirror)
        commit = _git(["--git-dir", str(path), "rev-parse", "HEAD"], text=True)
        archive = _git(["--git-dir", str(path), "archive", "--format=tar", "HEAD", PACKAGE])
        if commit.returncode == 0 and archive.returncode == 0:
            temporary = Path(tempfile.mkdtemp(prefix="authors-code-"))
            with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
                tar.extractall(temporary, filter="data")
            if (temporary / PACKAGE / "training_script.py").is_file():
                return temporary / PACKAGE, commit.stdout.strip(), temporary
            shutil.rmtree(temporary, ignore_errors=True)
    raise BadInput(f"--authors-code {path} holds no {PACKAGE}/training_script.py (nor is it a git repository of it)")


def import_authors_code(package: Path) -> types.SimpleNamespace:
    sys.path.insert(0, str(package))
    try:
        modules = {
            name: importlib.import_module(name)
            for name in ("training_configs", "utilities", "modules_rnn_models", "training_script")
        }
    except Exception as error:  # noqa: BLE001 - whatever their import needs that we lack
        raise BadInput(f"cannot import their code from {package}: {type(error).__name__}: {error}") from None
    return types.SimpleNamespace(**modules)


def their_args(code, encoder: str, settings: PretrainConfig, options: dict, task, zoo, criterion, device):
    """Their argument namespace as their ``__main__`` builds it (parser defaults, then the
    encoder's config), with our sizes and the fields ``conditional_args`` would derive."""
    argv = sys.argv
    try:
        sys.argv = [argv[0]]
        args = code.training_script.parse_args()
    finally:
        sys.argv = argv
    encoder_type, config_name = ENCODERS[encoder]
    config_name = config_name.format(probes=options.get("probes", 1))
    configs = code.training_configs.encoder_configs
    base = configs.get(config_name) or configs[config_name.rsplit("_", 1)[0] + "_1"]
    vars(args).update(base)
    args.config = config_name if config_name in configs else f"{config_name.rsplit('_', 1)[0]}_1 (resized)"
    args.encoder_type = encoder_type
    for ours, theirs in OPTION_NAMES[encoder].items():
        if options.get(ours) is not None:
            setattr(args, theirs, options[ours])
    architecture = zoo.spec.config
    vars(args).update(
        # the subjects
        rnn_num_layers=architecture["num_layers"],
        rnn_hidden_size=architecture["hidden_size"],
        # what conditional_args derives from a dataset name
        dataset=f"weightspace zoo {zoo.path}",
        dataset_task="formal_languages" if task.input_kind == "categorical" else "sequential_mnist",
        one_hot_tokens=0,  # our inputs arrive as float vectors (one-hot for tokens)
        probing_input_softmax=int(task.input_kind == "categorical"),
        probing_input_dim=task.input_size,
        probing_output_dim=task.output_size,
        sequence_length=task.probe_length,
        permutation_augmentation=0,  # their rule: only for the flat and transformer encoders
        # our budget
        total_training_steps=settings.steps,
        learning_rate=settings.learning_rate,
        weight_decay=settings.weight_decay,
        gradient_clipping=settings.gradient_clip,
        rnn_batch_size=settings.batch_size,
        sequence_batch_size=settings.rollouts_per_network,
        rnn_embedding_size=settings.embedding_size,
        emulator_hidden_size=settings.emulator_hidden,
        seed=settings.seed,
        cuda=int(torch.device(device).type == "cuda"),
        wandb_logging=0,
    )
    if encoder in ("interactive", "probing") and options.get("probe_length") is None:
        args.probing_sequence_length = task.probe_length
    if criterion is not None:
        args.criterion = criterion
    return args


# ---- settings ----------------------------------------------------------------------------------
def read_settings(cli) -> tuple[PretrainConfig, int | None, dict, list[str]]:
    """Our settings (the probing-budget-5k defaults, or ``--config`` with our pipeline's defaults
    for what it leaves out; then the flags), the patience (None: no early stopping), the
    encoder's options, and notes on settings their code cannot follow."""
    pretrain, all_options, notes = dict(DEFAULT_PRETRAIN), dict(DEFAULT_OPTIONS), []
    if cli.config is not None:  # what the file leaves out takes our pipeline's defaults, as it would there
        pretrain, all_options = {}, {}
        path = Path(cli.config)
        if not path.is_file():
            raise BadInput(f"--config {path} does not exist")
        try:
            data = json.loads(path.read_text()) if path.suffix == ".json" else read_toml(path)
        except (WeightspaceError, json.JSONDecodeError) as error:
            raise BadInput(f"--config {path}: {error}") from None
        pretrain.update(data.get("pretrain", {}))
        all_options.update(data.get("encoder_options", {}))
    for flag, key in [
        ("steps", "steps"),
        ("batch_size", "batch_size"),
        ("rollouts_per_network", "rollouts_per_network"),
        ("val_rollouts", "val_rollouts"),
        ("lr", "learning_rate"),
        ("weight_decay", "weight_decay"),
        ("clip", "gradient_clip"),
        ("eval_every", "eval_every"),
        ("embedding_size", "embedding_size"),
        ("emulator_hidden", "emulator_hidden"),
        ("patience", "patience"),
    ]:
        if getattr(cli, flag) is not None:
            pretrain[key] = getattr(cli, flag)
    pretrain.update(seed=cli.seed, encoder=cli.encoder)
    try:
        settings = typed.from_dict(PretrainConfig, pretrain, "pretrain settings")
    except WeightspaceError as error:
        raise BadInput(str(error)) from None
    patience = settings.patience if cli.config is not None or "patience" in pretrain else None
    for key, theirs in [
        ("separate_clipping", True),
        ("normalize_embedding", True),
        ("condition_at_width", True),
        ("loss_reduction", "mean"),
    ]:
        if getattr(settings, key) != theirs:
            notes.append(f"{key} = {getattr(settings, key)!r} is ignored: their code has {theirs!r}")
    options = dict(all_options.get(cli.encoder, {}))
    if cli.probes is not None:
        if cli.encoder == "statistics":
            raise BadInput("--probes is for the probing encoders")
        options["probes"] = cli.probes
    unknown = set(options) - set(OPTION_NAMES[cli.encoder]) - NO_COUNTERPART
    if unknown:
        raise BadInput(f"encoder option(s) {sorted(unknown)} of {cli.encoder} have no counterpart in their code")
    for name in sorted(set(options) & NO_COUNTERPART):
        notes.append(f"{cli.encoder} option {name} = {options.pop(name)!r} is ignored: their code has none")
    return settings, patience, {**our_defaults(cli.encoder), **options}, notes


def our_defaults(encoder: str) -> dict:
    """Our encoder's own defaults for the options that have a counterpart (e.g. statistics
    layers = 3), read from the keyword defaults of its class's constructors."""
    defaults = {}
    for cls in reversed(encoder_class(encoder).__mro__):
        if "__init__" in vars(cls):
            for name, parameter in inspect.signature(cls.__init__).parameters.items():
                if name in OPTION_NAMES[encoder] and parameter.default is not inspect.Parameter.empty:
                    defaults[name] = parameter.default
    return defaults


def open_zoo(path: Path) -> Zoo:
    if not path.exists():
        raise BadInput(f"--zoo {path} does not exist")
    if not (path / "manifest.json").exists() and (path / "zoo" / "manifest.json").exists():
        path = path / "zoo"  # an experiment's zoo step folder
    try:
        zoo = Zoo(path)
    except WeightspaceError as error:
        raise BadInput(f"--zoo {path}: {error}") from None
    if zoo.spec.architecture != "lstm":
        raise BadInput(f"--zoo {path} holds {zoo.spec.architecture} networks; their code emulates LSTMs only")
    return zoo


# ---- the bridge between our data and their model -----------------------------------------------
class Bridge:
    """Our zoo's weights as their flat parameter vectors, and their functional subject model."""

    def __init__(self, code, zoo: Zoo, device):
        models = code.modules_rnn_models
        config = zoo.spec.config
        sizes = dict(
            hidden_size=config["hidden_size"],
            input_size=config["input_size"],
            output_size=config["output_size"],
            num_layers=config["num_layers"],
            input_batch=True,
        )
        # as in their main(): the functional model, its vmapped call, the parameter shapes in
        # RNNFast's order under RNNFunctionalizable's names
        self.model = models.RNNFunctionalizable(**sizes)
        reference = models.RNNFast(**sizes)
        model = self.model
        shapes = {k: p.shape for k, p in model.named_parameters()}
        reference_names = [k for k, _ in reference.named_parameters()]
        converted = code.utilities.convert_parameter_names(reference_names)
        self.shapes = [(k, shapes[k]) for k in converted]
        self.our_names = [
            name.replace("lstm.", "rnn.", 1).replace("linear.", "readout.", 1) for name in reference_names
        ]
        self.vfunc = torch.vmap(
            lambda parameters, x, hidden: torch.func.functional_call(model, parameters, args=(x, hidden)),
            in_dims=(0, 0, (0, 0)),
            out_dims=(0, (0, 0)),
        )
        self.device = device

    def flat(self, weights) -> torch.Tensor:
        """A Population (N networks) as their flat parameter vectors (N, P)."""
        return torch.cat([weights[name].reshape(weights.size, -1) for name in self.our_names], 1)

    @torch.no_grad()
    def check(self, code, data: RunData, networks: int = 4) -> float:
        """Their functional model on the stored rollout inputs reproduces the stored output
        distributions (their check_rnn_model, on our zoo); the largest probability difference."""
        rows = torch.arange(min(networks, len(data.indices)))
        (weights, _), inputs, target = data.batch(rows, torch.arange(2))
        parameters = code.utilities.unflatten_params(self.flat(weights), self.shapes)
        N, R = inputs.shape[:2]
        zeros = [torch.zeros(N, R, self.model.hidden_size, device=inputs.device) for _ in range(self.model.num_layers)]
        outputs, _ = self.vfunc(parameters, inputs, (zeros, [z.clone() for z in zeros]))
        difference = (torch.softmax(outputs, -1) - target.exp()).abs().max().item()
        if not difference < 0.01:
            raise BadInput(f"their LSTM does not reproduce the zoo's stored outputs (max difference {difference:.3g})")
        return difference


class _Recorder(torch.nn.Module):
    """Their combined model, keeping its last emulator output for our loss (one forward pass)."""

    def __init__(self, combined):
        super().__init__()
        self.combined = combined
        self.output = None

    def forward(self, batch, diagnostics=False):
        result = self.combined(batch, diagnostics=diagnostics)
        self.output = result[0]
        return result


def their_batch(bridge: Bridge, subjects, inputs, target) -> dict:
    weights, _ = subjects
    return {"parameters": bridge.flat(weights), "sequences": inputs.contiguous(), "logits": target.contiguous()}


def our_losses(recorder: _Recorder, target: torch.Tensor) -> torch.Tensor:
    """Per network (N,): our reverse KL (mean over classes) from their emulator's output."""
    emulated = torch.log_softmax(recorder.output.detach(), -1).reshape(target.shape)
    return emulation_loss(emulated, target, "categorical", "mean")


@torch.no_grad()
def validation_losses(code, state, recorder, bridge, val: RunData, settings: PretrainConfig) -> tuple[float, float]:
    """(ours, theirs) on the validation networks, their first ``val_rollouts`` rollouts, batched
    as our pretraining batches them."""
    state.rnn_weight_encoder.eval()
    state.emulator.eval()
    ours, theirs = [], []
    for subjects, inputs, target in val.validation_batches(settings):
        state.args.sequence_batch_size = inputs.shape[1]  # the rollouts of each network
        losses = code.training_script.training_iteration(their_batch(bridge, subjects, inputs, target), state=state)
        theirs.append(losses.view(inputs.shape[0], -1).mean(1))
        ours.append(our_losses(recorder, target))
    state.args.sequence_batch_size = settings.rollouts_per_network
    state.rnn_weight_encoder.train()
    state.emulator.train()
    return torch.cat(ours).mean().item(), torch.cat(theirs).mean().item()


# ---- the run ------------------------------------------------------------------------------------
def run(cli) -> dict:
    settings, patience, options, notes = read_settings(cli)
    out = Path(cli.out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise BadInput(f"--out {out} exists and is not an empty folder")
    zoo = open_zoo(Path(cli.zoo))
    task = zoo.task.task_io(zoo)
    if task.output_kind != "categorical":
        raise BadInput(
            f"--zoo {zoo.path}: their emulator losses compare output distributions; this zoo's are continuous"
        )
    package, commit, temporary = locate_authors_code(Path(cli.authors_code))
    try:
        stubs = stub_missing_modules()
        code = import_authors_code(package)
    finally:
        if temporary is not None:  # imported modules stay loaded; the files are no longer needed
            shutil.rmtree(temporary, ignore_errors=True)
    device = torch.device(cli.device)
    args = their_args(code, cli.encoder, settings, options, task, zoo, cli.criterion, device)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)

    train, val = RunData(zoo, "train", device), RunData(zoo, "val", device)
    bridge = Bridge(code, zoo, device)
    check = bridge.check(code, train)

    # their models, built as their main() builds them
    code.utilities.seed_everything(settings.seed)
    encoder = code.training_script.define_encoder(
        args,
        probing_input_dim=task.input_size,
        probing_output_dim=task.output_size,
        v_actor_func_with_hidden=bridge.vfunc,
        model=bridge.model,
        device=device,
        vfunc_params_shapes=bridge.shapes,
    ).to(device)
    emulator = code.training_script.EmulatorLSTM(
        rnn_embedding_size=args.rnn_embedding_size,
        obs_dim=task.input_size,
        probing_output_dim=task.output_size,
        hidden_size=args.emulator_hidden_size,
        num_layers=args.emulator_num_layers,
        only_condition_bos=args.emulator_only_condition_bos,
    )
    if args.emulator_open_gate_init:
        emulator.open_forget_gates()
    emulator.to(device)
    optimizer = torch.optim.AdamW(
        list(encoder.parameters()) + list(emulator.parameters()), lr=args.learning_rate, weight_decay=args.weight_decay
    )
    state = code.utilities.ModelState(
        rnn_weight_encoder=encoder,
        emulator=emulator,
        combined_model=None,
        device=device,
        rnn_params_shapes=bridge.shapes,
        vfunc=bridge.vfunc,
        rnn_model=bridge.model,
        args=args,
    )
    recorder = _Recorder(code.training_script.CombinedEncoderEmulator(encoder, emulator, args=args, state=state))
    state.combined_model = recorder

    ours_encoder = build_encoder(cli.encoder, zoo.architecture, task, embedding_size=settings.embedding_size, **options)
    summary = {
        "encoder": cli.encoder,
        "their_config": args.config,
        "their_encoder_type": args.encoder_type,
        "criterion": args.criterion,
        "authors_code": str(Path(cli.authors_code).resolve()),
        "authors_commit": commit,
        "stubbed_modules": stubs,
        "zoo": str(zoo.path.resolve()),
        "splits": {"train": len(train.indices), "val": len(val.indices)},
        "settings": {**settings.to_json(), "patience": patience},
        "encoder_options": options,
        "their_args": {k: v for k, v in sorted(vars(args).items()) if isinstance(v, (int, float, str, type(None)))},
        "encoder_parameters": sum(p.numel() for p in encoder.parameters()),
        "our_encoder_parameters": ours_encoder.num_parameters,
        "emulator_parameters": sum(p.numel() for p in emulator.parameters()),
        "subject_check_max_probability_difference": check,
        "threads": torch.get_num_threads(),
        "device": str(device),
        "versions": {"weightspace": weightspace_version(), "torch": torch.__version__},
        "notes": notes,
    }
    del ours_encoder
    out.mkdir(parents=True, exist_ok=True)
    initial, initial_theirs = validation_losses(code, state, recorder, bridge, val, settings)
    print(f"{cli.encoder}: before training val_loss {initial:.5f} (theirs {initial_theirs:.5f})", file=sys.stderr)

    training_iteration = code.training_script.training_iteration
    step, best, best_step, since_best = 0, math.inf, None, 0
    running, running_theirs, train_seconds = [], [], 0.0
    started = time.time()
    while step < settings.steps and (patience is None or since_best < patience):
        tic = time.perf_counter()
        subjects, inputs, target = batch_for_step(train, settings, step, False)
        # their training step (the body of the loop in their main())
        losses = training_iteration(their_batch(bridge, subjects, inputs, target), state=state)
        loss = losses.mean()
        optimizer.zero_grad()
        loss.backward()
        if args.gradient_clipping > 0.0:
            torch.nn.utils.clip_grad_norm_(emulator.parameters(), args.gradient_clipping)
            torch.nn.utils.clip_grad_norm_(encoder.parameters(), args.gradient_clipping)
        optimizer.step()
        running.append(our_losses(recorder, target).mean().item())
        running_theirs.append(loss.item())
        train_seconds += time.perf_counter() - tic
        step += 1
        if step % settings.eval_every == 0 or step == settings.steps:
            val_loss, val_theirs = validation_losses(code, state, recorder, bridge, val, settings)
            record = {
                "step": step,
                "train_loss": float(np.mean(running)),
                "val_loss": val_loss,
                "seconds": round(time.time() - started, 2),
                "train_loss_theirs": float(np.mean(running_theirs)),
                "val_loss_theirs": val_theirs,
            }
            running, running_theirs = [], []
            storage.append_line(out / "metrics.jsonl", json.dumps(record))
            if val_loss < best:
                best, best_step, since_best = val_loss, step, 0
            else:
                since_best += 1
            print(
                f"{cli.encoder} step {step}: train {record['train_loss']:.5f} val {val_loss:.5f} "
                f"(their {args.criterion}: {val_theirs:.5f}) {record['seconds']:.0f}s",
                file=sys.stderr,
            )
    summary.update(
        best_val_loss=best,
        best_step=best_step,
        initial_val_loss=initial,
        initial_val_loss_theirs=initial_theirs,
        steps_trained=step,
        wall_seconds=round(time.time() - started, 2),
        train_seconds_per_step=round(train_seconds / max(step, 1), 4),
    )
    storage.write_json(out / "summary.json", summary)
    return summary


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit code 2 (argparse prints the usage too)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(2)


def parse(argv=None):
    parser = _Parser(prog="authors_code.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--authors-code", required=True, help="their repository, package folder or bare git repo")
    parser.add_argument("--zoo", required=True, help="weightspace zoo directory")
    parser.add_argument("--encoder", required=True, choices=sorted(ENCODERS))
    parser.add_argument("--out", required=True, help="new or empty output folder")
    parser.add_argument("--seed", type=int, default=0, help="initialisation and batches (our batch_for_step)")
    parser.add_argument("--config", help="experiment TOML or experiment.json: its [pretrain] and [encoder_options]")
    parser.add_argument("--steps", type=int)
    parser.add_argument("--lr", type=float)
    parser.add_argument("--weight-decay", type=float)
    parser.add_argument("--clip", type=float, help="gradient-norm clip (encoder and emulator separately)")
    parser.add_argument("--batch-size", type=int, help="networks per step")
    parser.add_argument("--rollouts-per-network", type=int)
    parser.add_argument("--val-rollouts", type=int)
    parser.add_argument("--eval-every", type=int)
    parser.add_argument("--patience", type=int, help="evaluations without improvement before stopping (default: none)")
    parser.add_argument("--embedding-size", type=int)
    parser.add_argument("--emulator-hidden", type=int)
    parser.add_argument("--probes", type=int, help="parallel probe sequences (probing encoders)")
    parser.add_argument("--criterion", choices=CRITERIA, help="their training criterion (default: their config's)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    cli = parse(argv)
    try:
        if cli.threads is not None:
            if cli.threads < 1:
                raise BadInput("--threads must be >= 1")
            torch.set_num_threads(cli.threads)
        summary = run(cli)
    except BadInput as error:
        print(f"authors_code.py: error: {error}", file=sys.stderr)
        return 2
    print(json.dumps({k: summary[k] for k in ("best_val_loss", "best_step", "wall_seconds", "train_seconds_per_step")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
