"""Export emitters for sequence layers: token and position embeddings, self-attention.

Both frameworks have a stock embedding (the same layout, different initialisation)
and a stock multi-head attention that keeps its weights differently (torch packs
q, k, v into one (3E, E) matrix, Keras keeps per-head kernels) and reads a boolean
mask with the opposite meaning. Neither has a learned position embedding layer:
each file gets a small one.
"""

from __future__ import annotations

from .. import nn
from .emitter import Emitter, Site, keras_args

_TORCH_POSITIONS = '''class PositionalEmbedding(nn.Module):
    """x + weight[:T] for (N, T, E) inputs: a learned vector per position (GPT's wpe)."""

    def __init__(self, max_len: int, embedding_dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(max_len, embedding_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.weight[: x.shape[1]]
'''

_KERAS_POSITIONS = '''class PositionalEmbedding(layers.Layer):
    """x + weight[:T] for (N, T, E) inputs: a learned vector per position (GPT's wpe)."""

    def __init__(self, max_len: int, embedding_dim: int, **kwargs):
        super().__init__(**kwargs)
        self.max_len, self.embedding_dim = max_len, embedding_dim

    def build(self, input_shape):
        self.weight = self.add_weight(shape=(self.max_len, self.embedding_dim),
                                      initializer="zeros", name="weight")

    def call(self, x):
        return x + self.weight[: keras.ops.shape(x)[1]]
'''

_TORCH_ATTENTION = '''class SelfAttention(nn.MultiheadAttention):
    """nn.MultiheadAttention with one (N, T, E) input as query, key and value; causal:
    position t attends to positions <= t only. Its weights keep torch's packed layout:
    in_proj_weight (3E, E), rows q, k, v (Keras: per-head kernels, see the Keras file)."""

    def __init__(self, embed_dim: int, num_heads: int, causal: bool = False):
        super().__init__(embed_dim, num_heads, batch_first=True)
        self.causal = causal

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mask = None
        if self.causal:
            # torch's boolean attn_mask: True = may NOT attend (masked scores become -inf),
            # here the upper triangle; Keras's attention_mask means the opposite (True = may
            # attend), and its use_causal_mask=True builds the lower triangle itself.
            # is_causal=True only lets torch take its fused causal kernel.
            t = x.shape[1]
            mask = torch.ones(t, t, dtype=torch.bool, device=x.device).triu(1)
        return super().forward(x, x, x, attn_mask=mask, need_weights=False,
                               is_causal=self.causal)[0]
'''

_KERAS_ATTENTION = '''def attention_weights(state, name: str, num_heads: int) -> list:
    """torch's packed nn.MultiheadAttention weights as Keras's MultiHeadAttention keeps
    them: in_proj_weight (3E, E) is q, k, v stacked, each (out, in); Keras has a kernel
    (E, H, D) and a bias (H, D) per projection, and an output kernel (H, D, E)."""
    w, b = state[f"{name}.in_proj_weight"], state[f"{name}.in_proj_bias"]
    e = w.shape[1]
    d = e // num_heads
    weights = []
    for rows in (slice(0, e), slice(e, 2 * e), slice(2 * e, 3 * e)):  # query, key, value
        weights += [w[rows].T.reshape(e, num_heads, d), b[rows].reshape(num_heads, d)]
    return weights + [state[f"{name}.out_proj.weight"].T.reshape(num_heads, d, e),
                      state[f"{name}.out_proj.bias"]]
'''


def _attention_keras(site: Site) -> list[str]:
    a = site.layer
    return [f"layers.MultiHeadAttention({a.num_heads}, {a.embed_dim // a.num_heads}, "
            f"{keras_args(site)})"]


def _attention_call(site: Site, x: str) -> str:
    return f"({x}, {x}, use_causal_mask=True)" if site.layer.causal else f"({x}, {x})"


def _attention_note(site: Site) -> str:
    heads = (f"{site.layer.num_heads} heads of {site.layer.embed_dim // site.layer.num_heads}: "
             "query = value = key = x")
    if not site.layer.causal:
        return heads
    return (f"{heads}; use_causal_mask=True: position t attends to positions <= t. Keras's "
            "attention_mask True = may attend, torch's attn_mask True = may not attend: the "
            "opposite meaning")


def _embedding_weights(site: Site) -> list[str]:
    return [f'model.get_layer("{site.name}").set_weights([state["{site.path}.weight"]])']


SEQUENCE_EMITTERS: dict[type, Emitter] = {
    nn.Embedding: Emitter(
        "embedding", torch=lambda s: f"nn.Embedding({s.layer.num_embeddings}, {s.layer.embedding_dim})",
        keras=lambda s: [f"layers.Embedding({s.layer.num_embeddings}, {s.layer.embedding_dim}, "
                         f"{keras_args(s)})"],
        weights=_embedding_weights,
        note=lambda s: "the same (num_embeddings, dim) table as torch's; Keras draws it from "
                       "U(-0.05, 0.05), torch from N(0, 1): load_weights replaces both"),
    nn.PositionalEmbedding: Emitter(
        "positions",
        torch=lambda s: f"PositionalEmbedding({s.layer.max_len}, {s.layer.embedding_dim})",
        keras=lambda s: [f"PositionalEmbedding({s.layer.max_len}, {s.layer.embedding_dim}, "
                         f"{keras_args(s)})"],
        weights=_embedding_weights, helpers=(_TORCH_POSITIONS, _KERAS_POSITIONS)),
    nn.SelfAttention: Emitter(
        "attention",
        torch=lambda s: (f"SelfAttention({s.layer.embed_dim}, {s.layer.num_heads}"
                         f"{', causal=True' if s.layer.causal else ''})"),
        keras=_attention_keras, keras_call=_attention_call,
        weights=lambda s: [f"# {s.path}: torch's packed (3E, E) in_proj_weight -> Keras's "
                           "per-head (E, H, D) query, key and value kernels",
                           f'model.get_layer("{s.name}").set_weights(attention_weights(state, '
                           f'"{s.path}", {s.layer.num_heads}))'],
        note=_attention_note, helpers=(_TORCH_ATTENTION, _KERAS_ATTENTION)),
}
