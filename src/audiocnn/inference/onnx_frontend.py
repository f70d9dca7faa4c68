"""A frontend in a form ONNX can hold: the STFT as two matrix products instead of `torch.stft`.

`audiocnn export` puts the spectrogram frontend inside the ONNX graph, so a device needs
nothing but ONNX Runtime. `torch.stft` returns complex tensors, which the ONNX exporter does
not take; its real-valued form maps to ONNX's `STFT` operator, which ONNX Runtime computes
frame by frame (6.3 ms per 5 s window at 16 kHz on one core, 4 times torch's 1.5 ms). A plain
DFT as a convolution with a cosine/sine kernel was 4.4 ms: n_fft² multiply-adds per frame. So
the DFT is factorised once (Cooley-Tukey): n_fft = rows × cols, a frame read as a rows × cols
matrix (sample cols·r + c) gets a rows-point DFT down its columns, then a cols-point DFT along
its rows with the twiddle factors folded into one matrix per output row. That is two batched
MatMuls with 1/8 of the plain DFT's arithmetic (n_fft 1024); with the mel filterbank, about
2 ms per window in ONNX Runtime (torch's whole mel frontend: 0.8 ms).

Only this export path uses these modules; `exportable` swaps them into a copy of a frontend
and checks the copy against the original before anything is exported with it. Frames are
cut with a gather of index blocks (gcd(hop, n_fft) samples each, so a block is copied whole),
which needs the window length fixed: the graph takes windows of exactly one length.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from audiocnn.errors import ConfigError
from audiocnn.features import Frontend, Pcen, create_frontend
from audiocnn.features.spectral import MelPower, PcenParams, Stft

#: How far the copy's images (dB) may stray from the original's on the check signal. Both are
#: float32; they differ only in rounding, which is largest in bins 80 dB below a frame's peak.
MAX_DB_DIFFERENCE = 0.05


class MatrixStft(nn.Module):
    """|STFT|² of fixed-length windows, as `Stft` computes it (librosa's framing), from gathers and MatMuls."""

    def __init__(self, stft: Stft, n_samples: int) -> None:
        super().__init__()
        n_fft, hop = stft.n_fft, stft.hop_length
        self.n_fft, self.bins, self.frames = n_fft, n_fft // 2 + 1, 1 + n_samples // hop
        self.rows = 1 << (n_fft.bit_length() - 1) // 2  # n_fft is a power of two (spectral.next_power_of_two)
        self.cols = n_fft // self.rows
        self.out_cols = self.cols // 2 + 1  # k = kr + rows·kc reaches n_fft/2 (one-sided) with kc <= cols/2
        self.block = math.gcd(hop, n_fft)
        self.tail = (-(n_samples + n_fft)) % self.block  # zeros so the padded signal is whole blocks
        blocks = torch.arange(self.frames)[:, None] * (hop // self.block) + torch.arange(n_fft // self.block)
        self.register_buffer("blocks", blocks, persistent=False)
        window = torch.zeros(n_fft, dtype=torch.float64)  # torch.stft centres a shorter window in n_fft
        left = (n_fft - stft.win_length) // 2
        window[left : left + stft.win_length] = stft.window.double()
        self.register_buffer("window", window.reshape(self.rows, self.cols).float(), persistent=False)
        r = torch.arange(self.rows, dtype=torch.float64)
        angle = 2 * math.pi * torch.outer(r, r) / self.rows  # (kr, r)
        self.register_buffer("dft_rows", torch.cat([angle.cos(), -angle.sin()]).float(), persistent=False)
        c = torch.arange(self.cols, dtype=torch.float64)
        k = r[:, None, None] + self.rows * torch.arange(self.out_cols, dtype=torch.float64)  # (kr, 1, kc)
        angle = 2 * math.pi * c[:, None] * k / n_fft  # (kr, c, kc): e^{-i·angle}, the twiddle and the row DFT
        cos, sin = angle.cos(), angle.sin()
        # (re + i·im)(cos - i·sin) = re·cos + im·sin + i(im·cos - re·sin), as one real product
        real_form = torch.cat([torch.cat([cos, -sin], 2), torch.cat([sin, cos], 2)], 1)  # (kr, 2 cols, 2 kc)
        self.register_buffer("dft_cols", real_form.float(), persistent=False)
        self.register_buffer("order", (r[:, None] + self.rows * torch.arange(self.out_cols)).long(), persistent=False)

    def spectrum(self, x: Tensor) -> Tensor:
        """(batch, samples) -> (rows, batch·frames, 2·out_cols): real parts, then imaginary parts,
        of bin kr + rows·kc at [kr, frame, kc]."""
        half = self.n_fft // 2
        padded = F.pad(x, (half, half + self.tail))
        frames = padded.reshape(x.shape[0], -1, self.block)[:, self.blocks]  # (batch, frames, n_fft/block, block)
        frames = frames.reshape(-1, self.rows, self.cols) * self.window
        down = torch.matmul(self.dft_rows, frames)  # (batch·frames, 2 rows, cols): real rows, then imaginary
        down = down.reshape(-1, 2, self.rows, self.cols).permute(2, 0, 1, 3).reshape(self.rows, -1, 2 * self.cols)
        return torch.matmul(down, self.dft_cols)

    def forward(self, x: Tensor) -> Tensor:
        """(batch, samples) -> (batch, bins, frames), as `Stft`."""
        spectrum = self.spectrum(x)
        power = spectrum[..., : self.out_cols].square() + spectrum[..., self.out_cols :].square()
        by_bin = power.permute(1, 2, 0).reshape(-1, self.out_cols * self.rows)[:, : self.bins]  # bin kr + rows·kc
        return by_bin.reshape(x.shape[0], self.frames, self.bins).transpose(1, 2)


class MatrixMelPower(nn.Module):
    """`MelPower` on `MatrixStft`: the filterbank is laid out in the spectrum's own (kr, real/imaginary,
    kc) order, so squaring and one MatMul give the mel power, with no reordering of the spectrum."""

    def __init__(self, mel: MelPower, n_samples: int) -> None:
        super().__init__()
        self.stft = MatrixStft(mel.stft, n_samples)
        s = self.stft
        bank = mel.filterbank.double().T  # (bins, bands)
        order = s.order  # (rows, out_cols): the bin at each place; those past n_fft/2 get no weight
        weights = torch.zeros(s.rows, s.out_cols, bank.shape[1], dtype=torch.float64)
        valid = order < s.bins
        weights[valid] = bank[order[valid]]
        both = torch.stack([weights, weights], 1)  # re² and im² of a bin share its weight
        self.register_buffer("weights", both.reshape(-1, bank.shape[1]).float(), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        """Mel power (batch, bands, frames) with the STFT as matrix products (exportable)."""
        s = self.stft
        squares = s.spectrum(x).square().transpose(0, 1).reshape(-1, s.rows * 2 * s.out_cols)
        return torch.matmul(squares, self.weights).reshape(x.shape[0], s.frames, -1).transpose(1, 2)


class MatrixPcen(nn.Module):
    """`spectral.pcen` over a fixed number of frames. Its smoother is a loop over frames, which a
    traced graph would unroll into hundreds of nodes; it is linear, so here it is one product with
    its impulse-response matrix. ONNX has no expm1: exp(z) - 1 loses only digits far below a
    band's level."""

    def __init__(self, params: PcenParams, frames: int) -> None:
        super().__init__()
        self.params = params
        b, t = params.smoothing, torch.arange(frames, dtype=torch.float64)
        lag = t[None, :] - t[:, None]  # [j, t]: what input frame j contributes to output frame t
        response = torch.where(lag >= 0, b * (1 - b) ** lag.clamp_min(0), torch.zeros(()))
        response[0] = (1 - b) ** t  # the smoother starts at the first frame's energy
        self.register_buffer("response", response.float(), persistent=False)

    def forward(self, energy: Tensor) -> Tensor:
        """PCEN of mel energy, the smoother as a matrix product (exportable)."""
        p = self.params
        smoothed = torch.matmul(energy, self.response)
        gain_factor = torch.exp(-p.gain * (np.log(p.eps) + torch.log1p(smoothed / p.eps)))
        return p.bias**p.power * (torch.exp(p.power * torch.log1p(energy * gain_factor / p.bias)) - 1)


class ExportableFrontend(nn.Module):
    """A copy of `frontend` for windows of `n_samples`, its STFTs swapped for matrix ones (see the module notes)."""

    def __init__(self, frontend: Frontend, n_samples: int) -> None:
        super().__init__()
        # rebuilt from its config rather than deep-copied: MelPower's sparse filterbank cannot be copied
        self.frontend = _swapped(create_frontend(frontend.config()).eval(), n_samples)
        self.n_samples = n_samples
        if isinstance(self.frontend, Pcen):
            self.pcen = MatrixPcen(self.frontend.params, 1 + n_samples // self.frontend.params.hop_length)

    def forward(self, waveforms: Tensor) -> Tensor:
        """The frontend's images computed with operators ONNX can export."""
        if isinstance(self.frontend, Pcen):
            return self.pcen(self.frontend.mel(waveforms) * self.frontend.params.scale).unsqueeze(1)
        # compute(), not forward(): the CPU chunking in Frontend.forward would fix the batch size in the graph
        return self.frontend.compute(waveforms)


def _swapped(module: nn.Module, n_samples: int) -> nn.Module:
    for name, child in module.named_children():
        if isinstance(child, MelPower):
            setattr(module, name, MatrixMelPower(child, n_samples))
        elif isinstance(child, Stft):
            setattr(module, name, MatrixStft(child, n_samples))
        else:
            _swapped(child, n_samples)
    return module


def check_signal(n_samples: int, sample_rate: int, batch: int = 3) -> Tensor:
    """Seeded test windows with a wide dynamic range: noise under a rising tone, clicks, and silence at the end."""
    rng = np.random.default_rng(0)
    hz = np.linspace(100.0, 0.4 * sample_rate, n_samples)  # up to 80% of Nyquist
    chirp = np.sin(2 * np.pi * np.cumsum(hz) / sample_rate)
    clicks = np.zeros(n_samples)
    clicks[:: max(1, n_samples // 7)] = 1.0
    rows = [0.3 * chirp + 0.01 * rng.standard_normal(n_samples), 0.5 * clicks, 0.1 * rng.standard_normal(n_samples)]
    signal = np.stack([rows[i % 3] for i in range(batch)]).astype(np.float32)
    signal[:, -n_samples // 5 :] = 0.0  # zero padding, as a short clip's last window has
    return torch.from_numpy(signal)


def exportable(frontend: Frontend, n_samples: int) -> ExportableFrontend:
    """The export copy of `frontend`, checked against it on `check_signal`; a ConfigError if they differ."""
    copied = ExportableFrontend(frontend, n_samples)
    signal = check_signal(n_samples, frontend.sample_rate)
    with torch.no_grad():
        difference = float((copied(signal) - frontend(signal)).abs().max())
    if not difference <= MAX_DB_DIFFERENCE:
        raise ConfigError(f"frontend {frontend.describe()}: its exportable copy differs from it by {difference:.3g} "
                          f"(more than {MAX_DB_DIFFERENCE}); it cannot be exported")
    return copied
