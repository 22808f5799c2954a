"""Several seeds of one encoder pretrained as one batched computation (paper 000 trains 15).

The seeds of one encoder run the same computation on other numbers: every parameter of the
encoder and of the emulator gets a leading seed axis and one step trains them all.

* The encoder: ``torch.func.vmap`` over ``functional_call`` (statistics, flattened, DWSNet and
  the references). The non-interactive probing encoder runs its subjects as one population of
  seeds x networks and its reader LSTM on the population engine. The interactive probing encoder
  steps ``nn.LSTMCell`` and the transformer's attention has no CPU batching rule, so ``vmap``
  cannot batch them: their seeds train one at a time, and :func:`pretrain_seeds` says so.
* The emulator: its LSTM (which ``vmap`` cannot batch either: no batching rule for
  ``aten::lstm``) is the population engine's, one network per seed; the linear maps are batched
  matmuls.

Each seed keeps its own run directory exactly as :func:`~weightspace.emulation.pretrain.pretrain`
writes it (config, metrics, best and last saves, references), draws the same batches, stops
early on its own validation loss (the others go on without it) and can be resumed alone or with
the others. Its numbers equal those of the seed trained alone up to float rounding: the emulator's
LSTM is computed by other kernels, and reductions are summed in another order.
"""

from __future__ import annotations

import copy
import dataclasses
import warnings
from pathlib import Path

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap
from tqdm.auto import tqdm

from ..encoders import encoder_class
from ..errors import ConfigError
from ..networks import LSTM
from ..networks.weights import Population
from ..training.optim import clip_grad_norm_per_network
from ..zoo.reader import Zoo
from .emulator import emulation_loss
from .pretrain import PretrainConfig, pretrain
from .references import REFERENCES
from .run import (
    RunData,
    RunLog,
    batch_for_step,
    best_so_far,
    build_models,
    check_out,
    describe_run,
    load_state,
    oracle_features,
    save_state,
    write_config,
)


def batching_problem(encoder: str) -> str | None:
    """Why the seeds of ``encoder`` (or a reference) cannot be trained as one computation, or None
    if they can."""
    return None if encoder in REFERENCES else encoder_class(encoder).seed_batching_problem


def pretrain_seeds(
    zoo_path,
    outs,
    configs: list[PretrainConfig],
    device="cpu",
    progress: bool = True,
    references: bool | list[dict] = True,
    log=print,
) -> list[Path]:
    """Pretrain the seeds ``configs`` (one encoder, settings equal but for ``seed``) into ``outs``
    as one batched computation; see the module docstring. ``references``: True trains each seed's
    constant floor and oracle ceiling (batched as well), a list gives each seed's reference run
    directories, False trains none. Encoders that cannot be batched, and seeds resumed from
    different steps, train one at a time (``log`` says which and why)."""
    outs, configs = [Path(out) for out in outs], list(configs)
    if len(outs) != len(configs) or not configs:
        raise ConfigError("pretrain_seeds needs one output directory per seed config")
    if any(dataclasses.replace(c, seed=0) != dataclasses.replace(configs[0], seed=0) for c in configs):
        raise ConfigError("seeds trained as one computation must have the same settings but for the seed")
    if len({c.seed for c in configs}) != len(configs) or len(set(outs)) != len(outs):
        raise ConfigError("each seed needs its own seed and its own output directory")
    per_seed_references = references if isinstance(references, list) else [references] * len(configs)
    problem = batching_problem(configs[0].encoder)
    if problem or len(configs) == 1:
        if problem:
            log(f"{configs[0].encoder}: seeds train one at a time ({problem})")
        return [
            pretrain(zoo_path, out, config, device, progress, refs)
            for out, config, refs in zip(outs, configs, per_seed_references)
        ]
    return _SeedPopulation(zoo_path, outs, configs, torch.device(device), progress, per_seed_references, log).run()


class _Call(nn.Module):
    """Calls one method of a module, so that ``functional_call`` can run it with other parameters."""

    def __init__(self, module: nn.Module, method: str):
        super().__init__()
        self.module, self.method = module, method

    def forward(self, *args):
        return getattr(self.module, self.method)(*args)


def _per_seed(module: nn.Module, method: str, params: dict, *args):
    """``module.method(*args)`` with each seed's parameters (leading axis of ``params`` and of the
    tensors among ``args``; other arguments are shared)."""
    call = _Call(module, method)
    in_dims = (0, *(0 if isinstance(a, torch.Tensor) else None for a in args))
    return vmap(lambda p, *a: functional_call(call, {f"module.{n}": t for n, t in p.items()}, a), in_dims=in_dims)(
        params, *args
    )


def _lstm(x, tensors: dict, prefix: str, readout: str | None, layers: int):
    """An ``nn.LSTM`` per seed (parameters ``prefix + weight_ih_l0`` ... stacked on the seed axis)
    followed by a linear ``readout``, on the population engine: x (S, B, T, I) -> (S, B, T, O);
    ``readout=None``: the top layer's hidden states (S, B, T, H)."""
    hidden_size = tensors[f"{prefix}weight_hh_l0"].shape[-1]
    if readout is None:  # the spec needs a readout; hidden() never applies it
        weight, bias = x.new_zeros(x.shape[0], 1, hidden_size), x.new_zeros(x.shape[0], 1)
    else:
        weight, bias = tensors[f"{readout}weight"], tensors[f"{readout}bias"]
    architecture = LSTM(x.shape[-1], hidden_size, layers, weight.shape[1])
    population = {
        f"rnn.{name}_l{layer}": tensors[f"{prefix}{name}_l{layer}"]
        for layer in range(layers)
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
    }
    population.update({"readout.weight": weight, "readout.bias": bias})
    weights = Population(architecture.spec, population)
    return architecture.hidden(weights, x)[0] if readout is None else architecture.forward(weights, x)[0]


class _SeedPopulation:
    """The seeds' encoders and emulators with their parameters stacked, and the training loop."""

    def __init__(self, zoo_path, outs, configs, device, progress, references, log):
        self.zoo_path, self.outs, self.configs, self.device, self.progress, self.log = (
            zoo_path,
            outs,
            configs,
            device,
            progress,
            log,
        )
        self.config = configs[0]
        self.zoo = zoo = Zoo(zoo_path)
        self.task = zoo.task.task_io(zoo)
        run_configs = [describe_run(zoo, zoo_path, c, self.task) for c in configs]
        for out, run_config in zip(outs, run_configs):
            check_out(out, run_config)
        train_features = oracle_features(zoo, "train")
        self.models = [
            build_models(c, zoo.architecture, self.task, device, train_features.shape[1], train_features)
            for c in configs
        ]
        for out, run_config, (encoder, emulator) in zip(outs, run_configs, self.models):
            write_config(out, run_config, encoder, emulator, train_features)
        if self.config.encoder not in REFERENCES:  # each seed's references, trained as one computation too
            wanted = [i for i, refs in enumerate(references) if refs is True]
            for name in REFERENCES if wanted else ():
                pretrain_seeds(
                    zoo_path,
                    [outs[i] / "references" / name for i in wanted],
                    [dataclasses.replace(configs[i], encoder=name, encoder_options={}) for i in wanted],
                    device,
                    progress,
                    False,
                    log,
                )
            references = [
                {name: out / "references" / name for name in REFERENCES} if refs is True else refs
                for out, refs in zip(outs, references)
            ]
        self.references = references
        curves = (
            [{name: best_so_far(directory) for name, directory in (refs or {}).items()} for refs in references]
            if self.config.encoder not in REFERENCES
            else [{} for _ in configs]
        )
        self.train, self.val = RunData(zoo, "train", device, train_features), RunData(zoo, "val", device)
        # each seed's own optimizer: the resume and the saves go through it, in the format of a run alone
        self.optimizers = [
            torch.optim.AdamW(
                [*encoder.parameters(), *emulator.parameters()],
                lr=self.config.learning_rate,
                weight_decay=self.config.weight_decay,
            )
            for encoder, emulator in self.models
        ]
        self.logs = [RunLog(out, c, curve) for out, c, curve in zip(outs, configs, curves)]
        for run_log, (encoder, emulator), optimizer in zip(self.logs, self.models, self.optimizers):
            run_log.resume(lambda path, e=encoder, m=emulator, o=optimizer: load_state(path, e, m, o))
        self.encoder_base = copy.deepcopy(self.models[0][0]).to("meta")
        self.emulator_base = copy.deepcopy(self.models[0][1]).to("meta")
        self.augmenting = getattr(self.models[0][0], "augment", False)

    # the stacked parameters ---------------------------------------------------------------------
    def _stack(self, active: list[int]) -> None:
        """Stack the parameters and optimizer state of the seeds ``active`` (from their modules)."""
        self.active = active
        self.encoder_params, self.encoder_buffers = stack_module_state([self.models[i][0] for i in active])
        self.emulator_params, _ = stack_module_state([self.models[i][1] for i in active])
        self.parameters = [*self.encoder_params.values(), *self.emulator_params.values()]
        self.groups = [list(self.encoder_params.values()), list(self.emulator_params.values())]
        self.optimizer = torch.optim.AdamW(
            self.parameters, lr=self.config.learning_rate, weight_decay=self.config.weight_decay
        )
        single = [self.optimizers[i] for i in active]
        for index, parameter in enumerate(self.parameters):
            states = [optimizer.state[optimizer.param_groups[0]["params"][index]] for optimizer in single]
            if states[0]:
                self.optimizer.state[parameter] = {
                    "step": states[0]["step"].clone(),
                    **{key: torch.stack([s[key] for s in states]) for key in ("exp_avg", "exp_avg_sq")},
                }

    def _unstack(self) -> None:
        """Copy the stacked parameters and optimizer state back into each active seed's modules."""
        named = [*self.encoder_params.items(), *self.emulator_params.items()]
        for slot, i in enumerate(self.active):
            encoder, emulator = self.models[i]
            modules = dict(encoder.named_parameters(prefix="e")) | dict(emulator.named_parameters(prefix="m"))
            single = self.optimizers[i]
            with torch.no_grad():
                for index, (name, stacked) in enumerate(named):
                    target = modules[("e." if index < len(self.encoder_params) else "m.") + name]
                    target.copy_(stacked[slot])
                    state = self.optimizer.state.get(stacked)
                    if state:
                        single.state[single.param_groups[0]["params"][index]] = {
                            "step": state["step"].clone(),
                            "exp_avg": state["exp_avg"][slot].clone(),
                            "exp_avg_sq": state["exp_avg_sq"][slot].clone(),
                        }

    # the batched computation --------------------------------------------------------------------
    def _embed(self, weights: dict, features: torch.Tensor) -> torch.Tensor:
        """Embeddings (S, N, Z) of the seeds' subjects: weights name -> (S, N, ...), features (S, N, F)."""
        base = self.encoder_base
        if getattr(base, "fixed_probes", False):  # references are no WeightEncoders
            return self._probing_embed(weights)
        spec = base.spec if hasattr(base, "spec") else None

        def one(params, buffers, tensors, feats):
            if getattr(base, "reads_features", False):
                return functional_call(base, (params, buffers), (feats,))
            return functional_call(base, (params, buffers), (Population(spec, tensors),))

        with warnings.catch_warnings():  # torch.quantile (statistics) loops over the seeds: cheap here
            warnings.filterwarnings("ignore", message="There is a performance drop")
            return vmap(one)(self.encoder_params, self.encoder_buffers, weights, features)

    def _probing_embed(self, weights: dict) -> torch.Tensor:
        """Non-interactive probing: probes per seed, subjects as one population of S x N networks,
        E_O per seed, the reader LSTMs on the population engine, the head per seed."""
        base, params = self.encoder_base, self.encoder_params
        probes = _per_seed(base, "probe_inputs", params)  # (S, M, L, X)
        S, N = next(iter(weights.values())).shape[:2]
        subjects = Population(base.spec, {n: t.reshape(S * N, *t.shape[2:]) for n, t in weights.items()})
        shared = probes.unsqueeze(1).expand(S, N, *probes.shape[1:]).reshape(S * N, *probes.shape[1:])
        outputs = base.architecture.forward(subjects, shared)[0]  # (S N, M, L, Y)
        encoded = _per_seed(base, "reader_inputs", params, outputs.view(S, N, *outputs.shape[1:]))
        if not base.reader_residual:
            return _lstm(encoded, params, "reader.", "head.", base.reader.num_layers)[:, :, -1]
        x = encoded  # the residual reader: each one-layer LSTM's hidden states plus its input
        for layer in range(len(base.reader)):
            x = _lstm(x, params, f"reader.{layer}.", None, 1) + x
        return _per_seed(base, "head", params, x[:, :, -1])

    def _emulate(self, z: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        """The seeds' emulators (``Emulator.forward`` with its LSTM and readout on the population
        engine): z (S, N, Z), inputs (S, N, R, T, I) -> (S, N, R, T, O)."""
        base, params = self.emulator_base, self.emulator_params
        x = _per_seed(base, "lstm_inputs", params, z, inputs)  # (S, N R, T, width)
        readout = _lstm(x, params, "lstm.", "readout.", base.lstm.num_layers)
        return _per_seed(base, "outputs", params, readout, tuple(inputs.shape[1:]))

    def _losses(self, weights, features, inputs, target, criterion="reverse-kl") -> torch.Tensor:
        """Per seed and network (S, N): the validation loss, or with the training criterion the training loss."""
        emulated = self._emulate(self._embed(weights, features), inputs)
        reduction = self.config.loss_reduction
        return vmap(lambda e, t: emulation_loss(e, t, self.task.output_kind, reduction, criterion))(emulated, target)

    def _clip(self) -> None:
        """Each seed's gradients clipped by its own norm, as ``clip_grad_norm_`` clips a run alone."""
        for group in self.groups if self.config.separate_clipping else [self.parameters]:
            clip_grad_norm_per_network(group, self.config.gradient_clip)

    @torch.no_grad()
    def _validation_losses(self) -> list[float]:
        S = len(self.active)
        losses = []
        for (weights, features), inputs, target in self.val.validation_batches(self.config):
            expand = lambda t: t.unsqueeze(0).expand(S, *t.shape)  # noqa: E731 - the same batch for every seed
            losses.append(
                self._losses(
                    {n: expand(t) for n, t in weights.items()}, expand(features), expand(inputs), expand(target)
                )
            )
        return torch.cat(losses, 1).mean(1).tolist()

    def _save(self, i: int):
        encoder, emulator = self.models[i]

        def save(path, with_optimizer, metadata):
            save_state(path, encoder, emulator, self.optimizers[i] if with_optimizer else None, metadata)

        return save

    def run(self) -> list[Path]:
        steps = {run_log.step for run_log in self.logs if not run_log.done}
        if len(steps) > 1:  # a kill between two seeds' saves: each resumes on its own
            self.log(
                f"{self.config.encoder}: seeds resume from different steps {sorted(steps)}; they train one at a time"
            )
            return [
                pretrain(self.zoo_path, out, c, self.device, self.progress, refs or False)
                for out, c, refs in zip(self.outs, self.configs, self.references)
            ]
        active = [i for i, run_log in enumerate(self.logs) if not run_log.done]
        bar = tqdm(
            total=self.config.steps * len(self.configs),
            initial=sum(r.step for r in self.logs),
            unit="step",
            disable=not self.progress,
            dynamic_ncols=True,
            desc=f"pretrain {self.config.encoder} x {len(self.configs)} seeds",
        )
        while active:
            self._stack(active)
            while all(not self.logs[i].done for i in active):
                self._train_step(bar)
                if self.logs[active[0]].evaluation_due():
                    self._unstack()
                    for i, loss in zip(active, self._validation_losses()):
                        self.logs[i].evaluated(loss, self._save(i))
                    bar.set_postfix(best=" ".join(f"{self.logs[i].best:.4f}" for i in active))
            self._unstack()
            active = [i for i in active if not self.logs[i].done]  # the others go on without them
        bar.close()
        for run_log in self.logs:
            run_log.close()
        return self.outs

    def _train_step(self, bar) -> None:
        samples = [batch_for_step(self.train, self.configs[i], self.logs[i].step, self.augmenting) for i in self.active]
        weights = {name: torch.stack([s[0][0][name] for s in samples]) for name in samples[0][0][0]}
        features, inputs, target = (torch.stack(parts) for parts in zip(*[(s[0][1], s[1], s[2]) for s in samples]))
        losses = self._losses(weights, features, inputs, target, self.config.criterion).mean(1)
        self.optimizer.zero_grad()
        losses.sum().backward()  # each seed's gradient is that of its own loss
        self._clip()
        self.optimizer.step()
        for i, loss in zip(self.active, losses.tolist()):
            self.logs[i].step += 1
            self.logs[i].running.append(loss)
        bar.update(len(self.active))


__all__ = ["batching_problem", "pretrain_seeds"]
