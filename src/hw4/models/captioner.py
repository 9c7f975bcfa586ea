"""The image captioner of Problem 4: an RNN (the homework's) or an LSTM over word vectors.

The image feature, projected, is the initial hidden state; each step reads the previous word
and predicts the next. Training uses teacher forcing; decoding is greedy or a beam search,
stopping at `<END>` or after `max_length` words.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

Cell = Literal["rnn", "lstm"]
State = torch.Tensor | tuple[torch.Tensor, torch.Tensor]  # h, or (h, c) for the LSTM; each (1, B, H)


@dataclass
class CaptionerConfig:
    vocab_size: int
    feature_dim: int
    null: int  # token ids of the special tokens, from the vocabulary
    start: int
    end: int
    cell: Cell = "rnn"
    wordvec_dim: int = 256
    hidden_dim: int = 512


class Captioner(nn.Module):
    config_class = CaptionerConfig  # hw4.models.nets.NetSpec builds it from JSON

    def __init__(self, config: CaptionerConfig):
        super().__init__()
        self.config = config
        self.project = nn.Linear(config.feature_dim, config.hidden_dim)
        self.embed = nn.Embedding(config.vocab_size, config.wordvec_dim)
        rnn = nn.LSTM if config.cell == "lstm" else nn.RNN  # nn.RNN: tanh, as the homework's
        self.rnn = rnn(config.wordvec_dim, config.hidden_dim, batch_first=True)
        self.vocab = nn.Linear(config.hidden_dim, config.vocab_size)

    def initial_state(self, features: torch.Tensor) -> State:
        h0 = self.project(features).unsqueeze(0)  # (B, D) -> (1, B, H)
        if self.config.cell == "lstm":
            return h0, torch.zeros_like(h0)  # the cell starts empty, as in CS231n
        return h0

    def forward(self, features: torch.Tensor, words: torch.Tensor) -> torch.Tensor:
        """Scores for the word after each of `words` (B, T): logits (B, T, V)."""
        hidden, _ = self.rnn(self.embed(words), self.initial_state(features))  # (B, T, H)
        return self.vocab(hidden)

    def loss(self, features: torch.Tensor, captions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher-forced cross-entropy of captions (B, T) = `<START> w.. <END> <NULL>..`.

        Returns (loss, tokens): the loss is summed over the predicted tokens and divided by the
        batch size (CS231n's temporal softmax loss, so the homework's curve has its scale);
        `<NULL>` targets count for nothing, so what follows `<END>` never matters.
        """
        inputs, targets = captions[:, :-1], captions[:, 1:]  # (B, T-1) each
        return caption_loss(self(features, inputs), targets, self.config.null)

    def _step(self, words: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """One step for words (N,): log-probabilities of the next word (N, V) and the new state."""
        hidden, state = self.rnn(self.embed(words).unsqueeze(1), state)  # hidden (N, 1, H)
        return F.log_softmax(self.vocab(hidden.squeeze(1)), dim=-1), state

    @torch.no_grad()
    def greedy(self, features: torch.Tensor, max_length: int) -> torch.Tensor:
        """The likeliest word at each step: tokens (B, max_length), `<NULL>` after `<END>`."""
        c = self.config
        b = features.shape[0]
        state = self.initial_state(features)
        words = torch.full((b,), c.start, dtype=torch.long, device=features.device)
        out = torch.full((b, max_length), c.null, dtype=torch.long, device=features.device)
        done = torch.zeros(b, dtype=torch.bool, device=features.device)
        for t in range(max_length):
            logp, state = self._step(words, state)
            words = logp.argmax(-1)
            out[:, t] = words.masked_fill(done, c.null)
            done |= words == c.end
            if done.all():
                break
        return out

    @torch.no_grad()
    def beam_search(self, features: torch.Tensor, max_length: int, width: int) -> torch.Tensor:
        """The likeliest caption among `width` kept per image: tokens (B, max_length).

        Scores are summed log-probabilities (no length normalisation), so width 1 is greedy.
        A finished beam stays in the running with its score frozen, extended by `<NULL>`.
        """
        c = self.config
        b, k, v = features.shape[0], width, c.vocab_size
        dev = features.device
        state = _repeat_state(self.initial_state(features), k)  # (1, B*K, H)
        scores = torch.full((b, k), float("-inf"), device=dev)
        scores[:, 0] = 0  # all beams start identical: keep one so the first step's top K differ
        tokens = torch.full((b, k, max_length), c.null, dtype=torch.long, device=dev)
        done = torch.zeros(b, k, dtype=torch.bool, device=dev)
        words = torch.full((b * k,), c.start, dtype=torch.long, device=dev)
        for t in range(max_length):
            logp, state = self._step(words, state)
            logp = logp.view(b, k, v).masked_fill(done.unsqueeze(-1), float("-inf"))
            logp[..., c.null] = torch.where(done, 0.0, logp[..., c.null])  # finished: only <NULL>, free
            best, flat = (scores.unsqueeze(-1) + logp).view(b, k * v).topk(k, dim=-1)  # (B, K) each
            parent, words = flat // v, flat % v  # which beam each survivor extends, with which word
            tokens = tokens.gather(1, parent.unsqueeze(-1).expand(-1, -1, max_length))
            tokens[:, :, t] = words
            done = done.gather(1, parent) | (words == c.end)
            scores = best
            state = _reorder_state(state, (parent + torch.arange(b, device=dev).unsqueeze(1) * k).view(-1))
            words = words.view(-1)
            if done[:, 0].all():  # scores only fall: no live beam can overtake a finished best one
                break
        return tokens[:, 0]  # topk sorts: beam 0 scores highest

    def decode(self, features: torch.Tensor, max_length: int, beam_width: int = 1) -> torch.Tensor:
        if beam_width > 1:
            return self.beam_search(features, max_length, beam_width)
        return self.greedy(features, max_length)


def caption_loss(logits: torch.Tensor, targets: torch.Tensor, null: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss, number of real tokens) for logits (B, T, V) and targets (B, T); `null` targets are masked out."""
    per_token = F.cross_entropy(logits.transpose(1, 2), targets.long(), reduction="none")  # (B, T)
    mask = targets != null
    return (per_token * mask).sum() / targets.shape[0], mask.sum()


def _repeat_state(state: State, k: int) -> State:
    if isinstance(state, tuple):
        return tuple(s.repeat_interleave(k, dim=1) for s in state)
    return state.repeat_interleave(k, dim=1)


def _reorder_state(state: State, index: torch.Tensor) -> State:
    if isinstance(state, tuple):
        return tuple(s.index_select(1, index) for s in state)
    return state.index_select(1, index)
