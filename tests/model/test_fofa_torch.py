"""Checks of the PyTorch reference itself (run by ctest label torch with /usr/bin/python3):
its hand-written pieces against PyTorch's own modules, the straight-through mask gradient, the
traced device request, and the .fofa round trip."""
import math
import os
import sys
import tempfile

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools", "convert"))
import fofa_torch as ft  # noqa: E402

SMALL = {"items": 30, "d": 16, "heads": 4, "ffn": 32, "blocks": 3, "max_len": 12,
         "controller": {"width": 8}, "mapper": {"rank": 2, "code_width": 8, "structure_width": 4}}


def close(a, b, tol=1e-5):
    return float((a - b).abs().max()) <= tol


def test_gru_matches_torch_gru():
    torch.manual_seed(0)
    g = ft.GRUExtractor(6, 5)
    ref = torch.nn.GRU(6, 5, batch_first=True)
    with torch.no_grad():
        for p in g.parameters():
            p.normal_()
        ref.weight_ih_l0.copy_(g.weight_ih)
        ref.weight_hh_l0.copy_(g.weight_hh)
        ref.bias_ih_l0.copy_(g.bias_ih)
        ref.bias_hh_l0.copy_(g.bias_hh)
    x = torch.randn(7, 6)
    _, h = ref(x.unsqueeze(0))
    assert close(g(x), h.flatten()), "GRUExtractor != torch.nn.GRU"


def test_attention_matches_multihead_attention():
    torch.manual_seed(1)
    d, heads, r = 16, 4, 9
    a = ft.Attention(d, heads)
    ref = torch.nn.MultiheadAttention(d, heads, batch_first=True)
    with torch.no_grad():
        ref.in_proj_weight.copy_(torch.cat([a.q.weight, a.k.weight, a.v.weight]))
        ref.in_proj_bias.copy_(torch.cat([a.q.bias, a.k.bias, a.v.bias]))
        ref.out_proj.weight.copy_(a.out.weight)
        ref.out_proj.bias.copy_(a.out.bias)
    xq, xkv = torch.randn(r, d), torch.randn(r, d)
    causal = torch.triu(torch.ones(r, r, dtype=torch.bool), diagonal=1)
    y, _ = ref(xq.unsqueeze(0), xkv.unsqueeze(0), xkv.unsqueeze(0), attn_mask=causal)
    assert close(a(xq, xkv), y[0]), "Attention != torch.nn.MultiheadAttention"


def test_gumbel_mask_straight_through():
    alpha = torch.tensor([0.3, -1.2, 2.0], requires_grad=True)
    noise = torch.tensor([-0.5, 1.5, 0.1])
    tau = 0.7
    m = ft.gumbel_mask(alpha, tau, noise)
    assert close(m, torch.tensor([0.0, 1.0, 1.0]), 1e-6)
    m.sum().backward()
    s = torch.sigmoid((alpha.detach() + noise) / tau)
    assert close(alpha.grad, s * (1 - s) / tau), "straight-through gradient is not d soft / d alpha"


def test_training_loss_reaches_controller_and_mapper():
    model = ft.FofaModel(SMALL)
    model.init_weights(3, mapper_scale=0.05)
    loss, parts = model.training_loss([1, 5, 7, 9, 3, 4, 11, 2], 3, 0.5, torch.randint(1, 31, (5, 2)),
                                      torch.zeros(3))
    assert math.isfinite(float(loss))
    loss.backward()
    assert float(model.controller.head.weight.grad.abs().sum()) > 0
    assert float(model.mapper.heads[0].a1.weight.grad.abs().sum()) > 0
    expected_sparsity = 1e-2 * float(parts["pi"].mean())
    assert abs(float(parts["sparsity"]) - expected_sparsity) < 1e-7


def test_planned_forward_traced_equals_infer():
    model = ft.FofaModel(dict(SMALL, padding="left_window", positions="end", norm="query_only"))
    model.init_weights(4, mapper_scale=0.05, ln_noise=0.1, bias_scale=0.1, head_bias=0.0)
    hist, cand = [3, 1, 4, 1, 5, 9, 2, 6], [5, 3, 5, 8]
    want = model.infer(hist, cand, 0.5)["logits"]
    pf = ft.PlannedForward(model, hist, 0.5)
    w, c = torch.tensor(model.window(hist)), torch.tensor(cand)
    with torch.no_grad():
        traced = torch.jit.trace(pf, (w, c), check_trace=False)
        assert close(pf(w, c), want) and close(traced(w, c), want)


def test_fofa_file_round_trip_and_corruption():
    model = ft.FofaModel(SMALL)
    model.init_weights(5, mapper_scale=0.05)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "m.fofa")
        ft.save_fofa(model, path)
        back = ft.load_fofa(path)
        for k, v in model.state_dict().items():
            assert torch.equal(v, back.state_dict()[k]), k
        raw = bytearray(open(path, "rb").read())
        raw[-3] ^= 0x40
        open(path, "wb").write(bytes(raw))
        try:
            ft.load_fofa(path)
            raise AssertionError("corrupted file was accepted")
        except ValueError as e:
            assert "CRC" in str(e)


def test_bad_input():
    model = ft.FofaModel(SMALL)
    for hist, cand, b, msg in [([], [1], 1.0, "empty history"), ([0], [1], 1.0, "history item id 0"),
                               ([1], [31], 1.0, "candidate item id 31"), ([1], [1], 0.0, "budget"),
                               ([1], [1], float("nan"), "budget"), ([1], [1], 1.5, "budget")]:
        try:
            model.infer(hist, cand, b)
            raise AssertionError(f"accepted {hist} {cand} {b}")
        except ValueError as e:
            assert msg in str(e), (msg, str(e))


if __name__ == "__main__":
    torch.set_num_threads(1)
    tests = [(n, f) for n, f in sorted(globals().items()) if n.startswith("test_")]
    for name, fn in tests:
        fn()
        print("ok", name)
    print(f"{len(tests)} passed")
