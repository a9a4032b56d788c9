"""Token choice, stop text and the decode step, on random logits: no model."""

from __future__ import annotations

import pytest

from ragtune.generate.decoding import (
    DecodeSettings,
    RowState,
    choose_token,
    cut_at_stop,
    decode_step,
    final_length,
)

torch = pytest.importorskip("torch")

VOCAB = 50
EOS = 2


def logits(seed: int, rows: int = 1) -> torch.Tensor:
    return torch.randn(rows, VOCAB, generator=torch.Generator().manual_seed(seed))


def detokenize(ids: list[int]) -> str:
    """Token n reads as the letter chr(ord('a') + n % 26), token 49 as a newline."""
    return "".join("\n" if t == 49 else chr(ord("a") + t % 26) for t in ids)


def test_greedy_takes_the_largest_logit_and_respects_bans() -> None:
    row = logits(0)[0]
    best = int(torch.argmax(row))
    assert choose_token(row, DecodeSettings()) == best
    second = choose_token(row, DecodeSettings(), banned={best})
    assert second != best and second == int(torch.topk(row, 2).indices[1])


def test_sampling_is_seeded_and_nucleus_keeps_only_the_top_set() -> None:
    row = logits(1)[0]
    settings = DecodeSettings(temperature=1.0, top_p=0.5)
    draws = [choose_token(row, settings, rng=torch.Generator().manual_seed(s)) for s in range(200)]
    again = [choose_token(row, settings, rng=torch.Generator().manual_seed(s)) for s in range(200)]
    assert draws == again
    probs = torch.softmax(row, dim=-1)
    order = torch.argsort(probs, descending=True).tolist()
    cumulative, nucleus = 0.0, set()
    for token in order:
        nucleus.add(token)
        cumulative += float(probs[token])
        if cumulative >= 0.5:
            break
    assert set(draws) <= nucleus and len(set(draws)) > 1


def test_stop_strings_cut_at_the_first_and_hold_back_a_partial_one() -> None:
    assert cut_at_stop("abc###def", ["###", "c#"]) == ("ab", True)
    assert cut_at_stop("abc", ["x"]) == ("abc", False)
    assert final_length("abc#", ["##"], finished=False) == 3  # "#" may start "##"
    assert final_length("abc\ufffd", [], finished=False) == 3  # an incomplete character waits
    assert final_length("abc#", ["##"], finished=True) == 4


def test_decode_step_ends_rows_on_eos_length_stop_and_cancel() -> None:
    eos_row = torch.full((VOCAB,), -5.0)
    eos_row[EOS] = 5.0
    plain = torch.full((VOCAB,), -5.0)
    plain[3] = 5.0  # "d"
    newline = torch.full((VOCAB,), -5.0)
    newline[49] = 5.0
    rows = [
        RowState(DecodeSettings()),
        RowState(DecodeSettings(max_new_tokens=1)),
        RowState(DecodeSettings(stop=("\n",))),
        RowState(DecodeSettings()),
        RowState(DecodeSettings(min_new_tokens=1)),
    ]
    batch = torch.stack([eos_row, plain, newline, plain, eos_row])
    out = decode_step(rows, batch, eos={EOS}, detokenize=detokenize, cancelled=lambda i: i == 3)
    assert [r.finish for r in rows] == ["eos", "length", "stop", "cancelled", ""]
    assert out[1] == (3, "d") and rows[2].text == "" and out[3] == (0, "")
    assert rows[4].generated and rows[4].generated[0] != EOS  # eos banned before min_new_tokens


def test_decode_step_streams_final_text_only_and_bans_the_first_token_once() -> None:
    row = RowState(DecodeSettings(stop=("dd",)), banned_first=frozenset({3}))
    favour_d = torch.full((1, VOCAB), -5.0)
    favour_d[0, 3] = 5.0
    favour_d[0, 4] = 4.0  # "e", the best allowed first token
    first = decode_step([row], favour_d, eos={EOS}, detokenize=detokenize)
    assert first == [(4, "e")]
    second = decode_step([row], favour_d, eos={EOS}, detokenize=detokenize)
    assert second == [(3, "")] and row.text == "ed"  # "d" may start the stop "dd": held back
    decode_step([row], favour_d, eos={EOS}, detokenize=detokenize)
    assert row.finish == "stop" and row.text == "e"
