"""Trial generators of paper 002's four neuroscience tasks, batched over a population.

Every generator takes ``keys`` (one seed per network, shape (K,)) and a counter-RNG ``stream``
(e.g. ``stream_id("flip-flop", "batch", step)``) and returns a :class:`Trials`: inputs
(K, B, T, I), targets (K, B, T, O) and a loss mask (K, B, T) saying which time steps the MSE
counts. Network k's trials depend on its key only, so a network sees the same data in any
population and a resumed build regenerates exactly what it lost.

Paper 002 does not state these constants; the values chosen here are the defaults of
:mod:`weightspace.tasks.neuroscience` and are stored in every zoo's manifest:

- flip-flop: 100 steps, a pulse on each channel with probability 0.05 per step, its sign fair;
- delayed discrimination: pulses of 5 steps at amplitude f / 10, f in [2, 10], a fixation of 5
  steps, a delay drawn in [5, 20] steps, and a response period of 10 steps whose target is
  sign(f2 - f1) (and |f2 - f1| / 8 on the optional auxiliary output); the loss counts the response
  period only;
- sine generation: 250 steps of dt = 0.004 s (1 s), a static input f / 30 selecting one of
  N_freq frequencies evenly spaced in [1, 30] Hz, target sin(2 pi f t);
- path integration: 100 steps, the heading turns by a normal step of s.d. 0.3 rad (both angles
  in 3D), speed uniform in [0, 0.5], the walk starts at the origin and stops at the walls of
  [-5, 5]^D (a step that would leave the box is cut at the wall, and the input reports the step
  actually taken), so the position is exactly the cumulative sum of the input velocities. The
  input is the heading as a unit vector and the speed (D + 1 channels).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .. import counter_rng


@dataclass(frozen=True)
class Trials:
    inputs: torch.Tensor  # (K, B, T, I)
    targets: torch.Tensor  # (K, B, T, O)
    mask: torch.Tensor  # (K, B, T) float: 1 where the loss counts

    def to(self, device) -> Trials:
        return Trials(self.inputs.to(device), self.targets.to(device), self.mask.to(device))


def _uniform(keys, stream: int, name: str, shape) -> torch.Tensor:
    return counter_rng.uniform(keys, counter_rng.stream_id(stream, name), tuple(shape))


def flip_flop(keys, stream: int, batch: int, steps: int = 100, channels: int = 3, p_switch: float = 0.05) -> Trials:
    """N-bit flip-flop (Sussillo & Barak 2013): each output holds the last nonzero input of its
    channel (0 before the channel's first pulse)."""
    shape = (batch, steps, channels)
    u = _uniform(keys, stream, "pulse", shape)  # one draw: a pulse below p_switch, its sign below p_switch / 2
    pulse = u < p_switch
    inputs = pulse * torch.where(u < p_switch / 2, -1.0, 1.0)
    # the last nonzero input so far: the input at the index of the latest pulse
    positions = torch.arange(steps).view(1, 1, steps, 1)
    latest = torch.where(pulse, positions, -1).cummax(dim=2).values
    held = inputs.gather(2, latest.clamp(min=0))
    targets = torch.where(latest >= 0, held, 0.0)
    return Trials(inputs, targets, torch.ones(inputs.shape[:3]))


#: delayed discrimination's fixed timing, in steps
FIXATION, PULSE, RESPONSE = 5, 5, 10
FREQUENCY_RANGE = (2.0, 10.0)


def delayed_discrimination(
    keys, stream: int, batch: int, delay_range: tuple[int, int] = (5, 20), auxiliary: bool = False
) -> Trials:
    """Two pulses f1, f2 separated by a delay; respond sign(f2 - f1) (and |f2 - f1| / 8 on an
    auxiliary output). Trials of one batch share the longest possible length (shorter delays end
    with padding the mask leaves out)."""
    low, high = FREQUENCY_RANGE
    f1 = low + (high - low) * _uniform(keys, stream, "f1", (batch,))
    f2 = low + (high - low) * _uniform(keys, stream, "f2", (batch,))
    delay = counter_rng.integers(
        keys, counter_rng.stream_id(stream, "delay"), delay_range[0], delay_range[1] + 1, (batch,)
    )
    steps = FIXATION + 2 * PULSE + delay_range[1] + RESPONSE
    t = torch.arange(steps).view(1, 1, steps)
    first = (t >= FIXATION) & (t < FIXATION + PULSE)
    second_start = (FIXATION + PULSE + delay).unsqueeze(-1)
    second = (t >= second_start) & (t < second_start + PULSE)
    response = (t >= second_start + PULSE) & (t < second_start + PULSE + RESPONSE)
    inputs = (first * f1.unsqueeze(-1) + second * f2.unsqueeze(-1)) / high
    outputs = [torch.sign(f2 - f1)] + ([(f2 - f1).abs() / (high - low)] if auxiliary else [])
    targets = torch.stack([response * o.unsqueeze(-1) for o in outputs], dim=-1)
    return Trials(inputs.unsqueeze(-1), targets, response.float())


SINE_FREQUENCY_RANGE = (1.0, 30.0)


def sine_frequencies(count: int) -> torch.Tensor:
    """The ``count`` frequencies (Hz) evenly spaced in [1, 30]."""
    return torch.linspace(*SINE_FREQUENCY_RANGE, count)


def sine_generation(
    keys, stream: int, batch: int, steps: int = 250, frequencies: int = 10, dt: float = 0.004
) -> Trials:
    """A static input f / 30 selects one of ``frequencies`` frequencies; the target is
    sin(2 pi f t) at t = dt, 2 dt, ..."""
    choice = counter_rng.integers(keys, counter_rng.stream_id(stream, "frequency"), 0, frequencies, (batch,))
    f = sine_frequencies(frequencies)[choice]  # (K, B)
    t = dt * torch.arange(1, steps + 1)
    targets = torch.sin(2 * math.pi * f.unsqueeze(-1) * t).unsqueeze(-1)
    inputs = (f / SINE_FREQUENCY_RANGE[1]).unsqueeze(-1).expand(*f.shape, steps).unsqueeze(-1)
    return Trials(inputs.contiguous(), targets, torch.ones(targets.shape[:3]))


ARENA = 5.0
TURN_STD = 0.3
MAX_SPEED = 0.5


def path_integration(keys, stream: int, batch: int, steps: int = 100, dimensions: int = 2) -> Trials:
    """Integrate heading and speed into a position in [-5, 5]^D (D = 2 or 3)."""
    if dimensions not in (2, 3):
        raise ValueError(f"path integration is 2D or 3D (got {dimensions})")
    angles = dimensions - 1  # theta; and phi in 3D
    # heading: a random start and normal turns (Box-Muller on counter-based uniforms)
    u1 = _uniform(keys, stream, "turn-1", (batch, steps, angles)).clamp(min=1e-7)
    u2 = _uniform(keys, stream, "turn-2", (batch, steps, angles))
    turns = TURN_STD * torch.sqrt(-2 * torch.log(u1)) * torch.cos(2 * math.pi * u2)
    start = 2 * math.pi * _uniform(keys, stream, "heading", (batch, 1, angles))
    heading = start + turns.cumsum(dim=2)
    theta = heading[..., 0]
    if dimensions == 2:
        direction = torch.stack([torch.cos(theta), torch.sin(theta)], -1)
    else:
        phi = heading[..., 1]
        direction = torch.stack(
            [torch.sin(phi) * torch.cos(theta), torch.sin(phi) * torch.sin(theta), torch.cos(phi)], -1
        )
    speed = MAX_SPEED * _uniform(keys, stream, "speed", (batch, steps))
    # the walk, cut at the walls; what enters the network is the step actually taken
    intended = direction * speed.unsqueeze(-1)
    position = torch.zeros(len(keys), batch, dimensions)
    positions = []
    for t in range(steps):
        position = (position + intended[:, :, t]).clamp(-ARENA, ARENA)
        positions.append(position)
    targets = torch.stack(positions, dim=2)
    velocity = torch.diff(targets, dim=2, prepend=torch.zeros_like(targets[:, :, :1]))
    taken = velocity.norm(dim=-1, keepdim=True)
    unit = torch.where(taken > 0, velocity / taken.clamp(min=1e-12), direction)
    inputs = torch.cat([unit, taken], dim=-1)
    return Trials(inputs, targets, torch.ones(targets.shape[:3]))
