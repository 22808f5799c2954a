"""Reference implementations of the probing encoders that run the subject networks one at a
time through ``nn.LSTM`` + ``nn.Linear`` with ``torch.func.functional_call``. They compute the
same embeddings as the batched encoders (tested) and are the baseline of the probing benchmark;
use the batched encoders for real work."""

from __future__ import annotations

import torch
from torch.func import functional_call

from weightspace.encoders.probing import InteractiveProbing, NonInteractiveProbing


class LoopNonInteractive(NonInteractiveProbing):
    def run_subjects(self, weights, probes):
        module = self.architecture.torch_module()
        return torch.stack([functional_call(module, weights.state_dict(k), (probes,))[0] for k in range(weights.size)])


class LoopInteractive(InteractiveProbing):
    def start_subjects(self, weights):
        self._module = self.architecture.torch_module()
        return [None] * weights.size

    def step_subjects(self, weights, probe, state):
        outs, new_state = [], []
        for k in range(weights.size):
            out, s = functional_call(self._module, weights.state_dict(k), (probe[k].unsqueeze(1), state[k]))
            outs.append(out[:, 0])
            new_state.append(s)
        return torch.stack(outs), new_state


#: batched encoder class -> its one-network-at-a-time reference
REFERENCE = {NonInteractiveProbing: LoopNonInteractive, InteractiveProbing: LoopInteractive}
