"""The key/value cache that grows in place: same keys and values as concatenation, rows dropped,
room running out."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from ragtune.generate.kv_cache import GrowingCache  # noqa: E402  (after the torch skip)


def test_growing_cache_holds_what_concatenation_holds() -> None:
    torch.manual_seed(0)
    prefix = [(torch.randn(3, 2, 4, 8), torch.randn(3, 2, 4, 8)) for _ in range(2)]
    cache = GrowingCache(2, reserve=2, pairs=prefix)  # room for 2 more: the third step grows it
    expected = [(k.clone(), v.clone()) for k, v in prefix]
    for _step in range(5):
        for layer in range(2):
            new_k, new_v = torch.randn(3, 2, 1, 8), torch.randn(3, 2, 1, 8)
            keys, values = cache.layers[layer].update(new_k, new_v)
            expected[layer] = (
                torch.cat([expected[layer][0], new_k], dim=-2),
                torch.cat([expected[layer][1], new_v], dim=-2),
            )
            assert torch.equal(keys, expected[layer][0])
            assert torch.equal(values, expected[layer][1])
    assert cache.get_seq_length() == 4 + 5
    keep = torch.tensor([0, 2])
    for layer in cache.layers:
        layer.batch_select_indices(keep)
    assert torch.equal(cache.layers[1].keys, expected[1][0][keep])
    keys, _values = cache.layers[1].update(torch.zeros(2, 2, 1, 8), torch.zeros(2, 2, 1, 8))
    assert keys.shape == (2, 2, 10, 8) and torch.equal(keys[:, :, :9], expected[1][0][keep])


def test_a_growing_cache_refuses_pairs_for_another_model() -> None:
    pair = (torch.zeros(1, 2, 3, 4), torch.zeros(1, 2, 3, 4))
    with pytest.raises(ValueError, match="3 key/value pairs for a model of 2 layers"):
        GrowingCache(2, reserve=0, pairs=[pair, pair, pair])
