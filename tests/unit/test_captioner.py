"""The captioner without a Trainer: loss masking, decoding stops, beam search against greedy."""

import pytest
import torch
import torch.nn.functional as F

from hw4.models.captioner import Captioner, CaptionerConfig, caption_loss

NULL, START, END = 0, 1, 2
V, D = 12, 10


def _net(cell: str = "rnn", seed: int = 0) -> Captioner:
    torch.manual_seed(seed)
    return Captioner(CaptionerConfig(V, D, NULL, START, END, cell, wordvec_dim=8, hidden_dim=16))


def _captions() -> torch.Tensor:
    # (3, 8): <START> words <END> then <NULL> padding, of three lengths
    return torch.tensor([
        [START, 5, 6, 7, END, NULL, NULL, NULL],
        [START, 4, END, NULL, NULL, NULL, NULL, NULL],
        [START, 8, 9, 10, 11, 5, END, NULL],
    ])


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_forward_scores_every_position(cell: str):
    logits = _net(cell)(torch.randn(3, D), _captions()[:, :-1])
    assert logits.shape == (3, 7, V)


def test_loss_is_summed_over_real_tokens_and_divided_by_the_batch():
    net, captions, features = _net(), _captions(), torch.randn(3, D)
    loss, tokens = net.loss(features, captions)
    logits = net(features, captions[:, :-1])
    expected = sum(
        F.cross_entropy(logits[i, t], captions[i, t + 1], reduction="sum")
        for i in range(3) for t in range(7) if captions[i, t + 1] != NULL
    ) / 3
    assert torch.allclose(loss, expected) and tokens.item() == 4 + 2 + 6


def test_scores_at_padded_positions_change_nothing():
    captions = _captions()
    targets = captions[:, 1:]
    logits = torch.randn(3, 7, V, requires_grad=True)
    loss, _ = caption_loss(logits, targets, NULL)
    (grad,) = torch.autograd.grad(loss, logits)
    pads = targets == NULL
    assert pads.any() and torch.all(grad[pads] == 0)
    scrambled = logits.detach().clone()
    scrambled[pads] = torch.randn(int(pads.sum()), V) * 100
    assert torch.equal(caption_loss(scrambled, targets, NULL)[0], loss.detach())


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_more_padding_changes_nothing(cell: str):
    net, captions, features = _net(cell), _captions(), torch.randn(3, D)
    longer = F.pad(captions, (0, 5), value=NULL)  # (3, 13): the same captions in a wider array

    def loss_and_grads(c: torch.Tensor):
        net.zero_grad()
        loss, _ = net.loss(features, c)
        loss.backward()
        return loss.detach(), [p.grad.clone() for p in net.parameters()]

    loss_a, grads_a = loss_and_grads(captions)
    loss_b, grads_b = loss_and_grads(longer)
    assert torch.allclose(loss_a, loss_b)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(grads_a, grads_b))


class Scripted(Captioner):
    """A captioner whose step t always prefers script[t]; counts its steps."""

    def __init__(self, script: list[int]):
        super().__init__(CaptionerConfig(V, D, NULL, START, END, "rnn", 8, 16))
        self.script, self.steps = script, 0

    def _step(self, words, state):
        logp = torch.full((words.shape[0], V), -10.0)
        logp[:, self.script[min(self.steps, len(self.script) - 1)]] = -0.1
        self.steps += 1
        return logp, state


@pytest.mark.parametrize("width", [1, 3])
def test_decoding_stops_at_end(width: int):
    net = Scripted([5, 6, END, 7, 7])
    tokens = net.decode(torch.randn(2, D), max_length=6, beam_width=width)
    assert tokens.tolist() == [[5, 6, END, NULL, NULL, NULL]] * 2
    assert net.steps == 3  # every caption finished: no further steps


@pytest.mark.parametrize("width", [1, 3])
def test_decoding_stops_at_the_maximum_length(width: int):
    tokens = Scripted([7]).decode(torch.randn(2, D), max_length=4, beam_width=width)
    assert tokens.tolist() == [[7, 7, 7, 7]] * 2


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_beam_width_one_is_greedy(cell: str):
    net = _net(cell, seed=1).eval()
    features = torch.randn(16, D) * 3
    assert torch.equal(net.beam_search(features, 10, width=1), net.greedy(features, 10))


def _log_likelihood(net: Captioner, features: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """log p(caption up to and including <END>) for decoded tokens (B, L)."""
    inputs = torch.cat([torch.full((len(tokens), 1), START), tokens[:, :-1]], dim=1)
    logp = F.log_softmax(net(features, inputs), -1).gather(2, tokens.unsqueeze(-1)).squeeze(-1)  # (B, L)
    ended = (tokens == END).long().cumsum(1)
    keep = (ended == 0) | ((ended == 1) & (tokens == END))  # up to the first <END>
    return (logp * keep).sum(1)


def test_a_wider_beam_finds_captions_at_least_as_likely_on_average():
    net = _net("lstm", seed=2).eval()
    features = torch.randn(32, D) * 3
    with torch.no_grad():
        greedy = _log_likelihood(net, features, net.greedy(features, 8))
        beam = _log_likelihood(net, features, net.beam_search(features, 8, width=4))
    assert beam.mean() >= greedy.mean()
